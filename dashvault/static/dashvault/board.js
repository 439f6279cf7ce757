// The board renderer and the live connection, shared by the dashboard page (dashboard.js) and
// the TV page (kiosk.js). The pages' CSP allows no inline script or style: everything here
// builds DOM nodes, sets text with textContent (never innerHTML with data) and places things
// through element.style (CSSOM), which the CSP allows.
//
//   const board = dashvaultBoard.mount(root, snapshot, { theme: "dark", scale: () => 1.5,
//                                                        onLayoutChange: (change) => {} });
//   board.render(snapshot);  board.resize();  board.destroy();
//   const live = dashvaultBoard.connect(url, { onData, onClose, onRetry });
//   live.close();
(function () {
  "use strict";

  const BACKOFF_BASE_MS = 1000;
  const BACKOFF_MAX_MS = 30000;
  const FONT = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif";
  // Sizes are for scale 1 (the dashboard page); a TV passes a larger scale.
  const THEMES = {
    light: {
      palette: ["#2257d6", "#12a594", "#e5484d", "#f5a524", "#8e4ec6", "#0091ff",
        "#d6409f", "#5b6b7f", "#46a758", "#ab6400"],
      axisLine: "#c9d0db",
      axisLabel: "#5d6778",
      splitLine: "#edf0f4",
      legendText: "#333",
      tooltip: null, // ECharts' own
      gaugeProgress: "#2257d6",
      gaugeTrack: "#e6eaf0",
      gaugeNumber: "#1c2330",
      gaugeNumberMax: 36,
    },
    dark: {
      palette: ["#5b8def", "#2ec4b0", "#ff6b6e", "#f7b84b", "#b07ee0", "#33a9ff",
        "#e66bb8", "#94a3b8", "#6cc47a", "#d9963a"],
      axisLine: "#3a4558",
      axisLabel: "#aab4c5",
      splitLine: "#253044",
      legendText: "#c9d1de",
      tooltip: { backgroundColor: "#1a2233", borderColor: "#33405a", textColor: "#e8ecf4" },
      gaugeProgress: "#5b8def",
      gaugeTrack: "#273245",
      gaugeNumber: "#f2f5fa",
      gaugeNumberMax: 56,
    },
  };

  // ---- small helpers ---------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  const plain = new Intl.NumberFormat("en", { maximumFractionDigits: 2 });
  const oneDecimal = new Intl.NumberFormat("en", { maximumFractionDigits: 1 });
  const compactNumber = new Intl.NumberFormat("en", {
    notation: "compact", maximumFractionDigits: 1,
  });

  function duration(seconds, compact) {
    const sign = seconds < 0 ? "-" : "";
    let rest = Math.round(Math.abs(seconds));
    if (rest < 60) return sign + rest + "s";
    const days = Math.floor(rest / 86400); rest %= 86400;
    const hours = Math.floor(rest / 3600); rest %= 3600;
    const minutes = Math.floor(rest / 60);
    if (days) return sign + days + "d" + (compact ? "" : " " + hours + "h");
    if (hours) return sign + hours + "h" + (compact ? "" : " " + minutes + "m");
    return sign + minutes + "m";
  }

  function formatValue(value, unit, currency, compact) {
    if (value === null || value === undefined || !isFinite(value)) return "–";
    if (unit === "currency" && currency) {
      try {
        return new Intl.NumberFormat("en", {
          style: "currency", currency: currency,
          notation: compact ? "compact" : "standard",
          maximumFractionDigits: compact ? 1 : (Math.abs(value) >= 10000 ? 0 : 2),
        }).format(value);
      } catch (error) {
        // An unknown ISO code: the number and the code.
        return (compact ? compactNumber : plain).format(value) + " " + currency;
      }
    }
    if (unit === "percent") return oneDecimal.format(value) + "%";
    if (unit === "duration") return duration(value, compact);
    return (compact ? compactNumber : plain).format(value);
  }

  function ago(seconds) {
    if (seconds < 5) return "just now";
    if (seconds < 60) return Math.floor(seconds) + " s ago";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min ago";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h ago";
    return Math.floor(seconds / 86400) + " d ago";
  }

  function tileBody(tile) {
    return tile.querySelector(".tile-body");
  }

  function emptyNote(body, text) {
    body.replaceChildren(el("p", "tile-empty", text));
  }

  function setSubtitle(tile, text) {
    const sub = tile.querySelector(".tile-sub");
    if (sub) sub.textContent = text;
  }

  // ---- mount: draw the tiles under `root` from a snapshot ----------------------------------

  // `root` holds the `.tile[data-widget]` sections of dashboards/_grid.html; a snapshot is
  // {"widgets": {id: data}} as the server embeds and pushes it. Options:
  //   theme: "light" (default) or "dark";
  //   scale: a number or a function returning one (read at each render), for font sizes,
  //          line widths and gaps in charts (default 1);
  //   onLayoutChange({added, removed}): the snapshot names widgets the page has no tile for,
  //          or lacks some it has (an editor changed the dashboard).
  function mount(root, snapshot, options) {
    options = options || {};
    const theme = THEMES[options.theme] || THEMES.light;
    const charts = new Map(); // widget id -> ECharts instance
    const gauges = new Map(); // widget id -> last gauge payload (its text scales with its size)
    let scale = readScale();
    let last = null;

    function readScale() {
      const value = typeof options.scale === "function" ? options.scale() : options.scale;
      return typeof value === "number" && isFinite(value) && value > 0 ? value : 1;
    }

    function px(size) {
      return Math.round(size * scale * 10) / 10;
    }

    const resizer = typeof ResizeObserver === "function"
      ? new ResizeObserver((entries) => {
        for (const entry of entries) {
          // A hidden board (a TV showing another one) has no size: draw it when it shows.
          if (!entry.contentRect.width || !entry.contentRect.height) continue;
          const id = entry.target.dataset.chartFor;
          const chart = charts.get(id);
          if (!chart) continue;
          const gauge = gauges.get(id);
          const tile = entry.target.closest(".tile");
          if (gauge && tile) renderGauge(tile, id, gauge);
          else chart.resize();
        }
      })
      : null;

    function dropChart(id) {
      const chart = charts.get(id);
      if (chart) {
        chart.dispose();
        charts.delete(id);
      }
      gauges.delete(id);
    }

    function renderKpi(tile, data) {
      const body = tileBody(tile);
      let box = body.querySelector(".kpi");
      if (!box) {
        box = el("div", "kpi");
        box.append(
          el("div", "kpi-value"),
          el("div", "kpi-change"),
          el("div", "kpi-target"),
        );
        body.replaceChildren(box);
      }
      const value = box.querySelector(".kpi-value");
      value.textContent = data.display;
      // Lets a stylesheet size the number to its length (the TV fits it to the tile).
      value.style.setProperty("--chars", String(Math.max(1, String(data.display || "").length)));
      value.classList.toggle("is-missing", data.value === null);

      const change = box.querySelector(".kpi-change");
      change.replaceChildren();
      change.classList.remove("up", "down", "flat");
      if (data.change_pct !== null && data.change_pct !== undefined) {
        const pct = data.change_pct;
        const direction = pct > 0.05 ? "up" : (pct < -0.05 ? "down" : "flat");
        const arrow = direction === "up" ? "▲" : (direction === "down" ? "▼" : "▶");
        change.classList.add(direction);
        change.append(
          el("span", "kpi-arrow", arrow),
          el("span", "kpi-pct", oneDecimal.format(Math.abs(pct)) + "%"),
          el("span", "kpi-vs", "vs previous period"),
        );
        change.setAttribute("aria-label",
          (direction === "down" ? "down " : "up ") + oneDecimal.format(Math.abs(pct)) +
          "% against the previous period");
      }

      const target = box.querySelector(".kpi-target");
      target.replaceChildren();
      if (data.target !== null && data.target !== undefined) {
        const pct = data.progress_pct === null ? 0 : data.progress_pct;
        const bar = el("div", "progress");
        const fill = el("div", "progress-fill");
        fill.style.width = Math.max(0, Math.min(100, pct)) + "%"; // CSSOM: allowed by the CSP
        if (pct >= 100) fill.classList.add("done");
        bar.append(fill);
        bar.setAttribute("role", "progressbar");
        bar.setAttribute("aria-valuemin", "0");
        bar.setAttribute("aria-valuemax", "100");
        bar.setAttribute("aria-valuenow", String(Math.round(pct)));
        target.append(
          bar,
          el("span", "kpi-target-text",
            oneDecimal.format(pct) + "% of target " + compactNumber.format(data.target)),
        );
      }
      setSubtitle(tile, data.period || "");
    }

    function chartBox(tile, id) {
      const body = tileBody(tile);
      let box = body.querySelector(".chart");
      if (!box) {
        box = el("div", "chart");
        box.dataset.chartFor = id;
        body.replaceChildren(box);
        if (resizer) resizer.observe(box);
      }
      return box;
    }

    function chartFor(tile, id) {
      if (typeof echarts === "undefined") {
        emptyNote(tileBody(tile), "Charts could not load.");
        return null;
      }
      const box = chartBox(tile, id);
      let chart = charts.get(id);
      if (!chart || chart.getDom() !== box) {
        if (chart) chart.dispose();
        chart = echarts.init(box, null, { renderer: "canvas" });
        charts.set(id, chart);
      }
      return chart;
    }

    function renderSeries(tile, id, data) {
      if (!data.series || !data.series.length || !data.labels.length) {
        dropChart(id);
        emptyNote(tileBody(tile), "No data yet.");
        return;
      }
      const chart = chartFor(tile, id);
      if (!chart) return;
      const line = data.kind === "line";
      const many = data.series.length > 1;
      chart.setOption({
        color: theme.palette,
        animationDuration: 300,
        animationDurationUpdate: 300,
        textStyle: { fontFamily: FONT },
        grid: { left: px(8), right: px(24), top: px(many ? 36 : 12), bottom: px(4),
          containLabel: true },
        // HTML tooltips need inline styles, which the CSP refuses: rich text draws on canvas.
        tooltip: Object.assign({
          trigger: "axis",
          renderMode: "richText",
          textStyle: { fontSize: px(14) },
          valueFormatter: (v) => formatValue(v, data.unit, data.currency, false),
        }, theme.tooltip && {
          backgroundColor: theme.tooltip.backgroundColor,
          borderColor: theme.tooltip.borderColor,
          textStyle: { color: theme.tooltip.textColor, fontSize: px(14) },
        }),
        legend: many
          ? { type: "scroll", top: 0, icon: "roundRect", itemWidth: px(12), itemHeight: px(8),
            textStyle: { color: theme.legendText, fontSize: px(12) } }
          : { show: false },
        xAxis: {
          type: "category",
          data: data.labels,
          boundaryGap: !line,
          axisTick: { show: false },
          axisLine: { lineStyle: { color: theme.axisLine } },
          axisLabel: { color: theme.axisLabel, fontSize: px(12), hideOverlap: true },
        },
        yAxis: {
          type: "value",
          splitNumber: 4,
          axisLabel: {
            color: theme.axisLabel,
            fontSize: px(12),
            formatter: (v) => formatValue(v, data.unit, data.currency, true),
          },
          splitLine: { lineStyle: { color: theme.splitLine } },
        },
        series: data.series.map((s) => ({
          name: s.name,
          type: line ? "line" : "bar",
          data: s.values,
          smooth: false,
          showSymbol: line && data.labels.length <= 16,
          symbolSize: px(6),
          lineStyle: line ? { width: px(2.5) } : undefined,
          areaStyle: line && !many ? { opacity: 0.12 } : undefined,
          barMaxWidth: px(28),
          itemStyle: line ? undefined : { borderRadius: [3, 3, 0, 0] },
          connectNulls: false,
        })),
      }, { replaceMerge: ["series", "xAxis", "yAxis"] });
      chart.resize();
    }

    function renderGauge(tile, id, data) {
      const body = tileBody(tile);
      const chart = chartFor(tile, id);
      if (!chart) return;
      gauges.set(id, data);
      let caption = body.querySelector(".gauge-caption");
      if (!caption) {
        caption = el("p", "gauge-caption");
        body.append(caption);
      }
      caption.textContent = data.target !== null && data.target !== undefined
        ? "Target " + compactNumber.format(data.target)
        : "No target set";
      // A half ring standing on the box's bottom edge, as large as the box allows (a wide,
      // short tile still gets a big gauge), with the number inside the ring, sized to fit
      // between its ends.
      chart.resize();
      const box = chart.getDom();
      const boxWidth = box.clientWidth;
      const boxHeight = box.clientHeight;
      const width = Math.round(Math.max(px(6), Math.min(px(18),
        Math.min(boxWidth / 2, boxHeight) * 0.12)));
      const baseline = boxHeight - Math.max(px(4), width / 2);
      const radius = Math.max(px(24),
        Math.min(boxWidth / 2 - width, baseline - width / 2 - px(2)));
      const inner = Math.max(px(8), radius - width);
      const text = String(data.display || "");
      const fontSize = Math.round(Math.max(px(12), Math.min(px(theme.gaugeNumberMax),
        inner * 0.55, (inner * 1.6) / Math.max(3, text.length * 0.6))));
      chart.setOption({
        series: [{
          type: "gauge",
          min: 0,
          max: data.max,
          startAngle: 180,
          endAngle: 0,
          radius: radius,
          center: [boxWidth / 2, baseline],
          progress: {
            show: true, width: width, roundCap: true,
            itemStyle: { color: theme.gaugeProgress },
          },
          axisLine: { roundCap: true, lineStyle: { width: width, color: [[1, theme.gaugeTrack]] } },
          pointer: { show: false },
          axisTick: { show: false },
          splitLine: { show: false },
          axisLabel: { show: false },
          anchor: { show: false },
          title: { show: false },
          detail: {
            valueAnimation: false,
            offsetCenter: [0, -Math.round(fontSize * 0.6 + px(2))],
            fontSize: fontSize,
            fontFamily: FONT,
            fontWeight: 700,
            color: theme.gaugeNumber,
            formatter: () => data.display,
          },
          data: [{ value: data.value === null ? 0 : Math.min(data.value, data.max) }],
        }],
      });
    }

    function renderLeaderboard(tile, data) {
      const body = tileBody(tile);
      if (!data.rows.length) {
        emptyNote(body, "No data yet.");
        return;
      }
      const top = Math.max(...data.rows.map((row) => Math.abs(row.value || 0)), 1e-9);
      const list = el("ol", "leaderboard");
      data.rows.forEach((row, index) => {
        const item = el("li", "leader");
        const share = el("span", "leader-bar");
        share.style.width = (Math.abs(row.value || 0) / top * 100).toFixed(1) + "%";
        item.append(
          el("span", "leader-rank", index + 1),
          el("span", "leader-name", row.dimension),
          el("span", "leader-value", row.display),
          share,
        );
        list.append(item);
      });
      body.replaceChildren(list);
    }

    function renderText(tile, data) {
      tileBody(tile).replaceChildren(el("p", "text-widget", data.text || ""));
    }

    function renderTile(tile, data) {
      const id = tile.dataset.widget;
      const title = tile.querySelector(".tile-title");
      if (title) title.textContent = data.title || "Untitled";
      if (tile.dataset.rendered !== data.kind) {
        // A widget whose kind changed starts over.
        dropChart(id);
        tileBody(tile).replaceChildren();
        setSubtitle(tile, "");
        tile.dataset.rendered = data.kind;
      }
      tile.classList.remove("is-gone");
      switch (data.kind) {
        case "kpi": renderKpi(tile, data); break;
        case "line":
        case "bar": renderSeries(tile, id, data); break;
        case "gauge": renderGauge(tile, id, data); break;
        case "leaderboard": renderLeaderboard(tile, data); break;
        case "text": renderText(tile, data); break;
        default: emptyNote(tileBody(tile), "This kind of widget cannot be shown here.");
      }
    }

    // Draws every tile from `next`; answers which widgets the page lacks or has in excess.
    function render(next) {
      last = next || {};
      scale = readScale();
      const widgets = last.widgets || {};
      const seen = new Set();
      for (const tile of root.querySelectorAll(".tile[data-widget]")) {
        const id = tile.dataset.widget;
        seen.add(id);
        const data = widgets[id];
        if (data) {
          try {
            renderTile(tile, data);
          } catch (error) {
            emptyNote(tileBody(tile), "This widget could not be drawn.");
            console.warn("widget", id, error);
          }
        } else {
          dropChart(id);
          tile.classList.add("is-gone");
          emptyNote(tileBody(tile), "This widget was removed.");
        }
      }
      const change = {
        added: Object.keys(widgets).filter((id) => !seen.has(id)),
        removed: [...seen].filter((id) => !widgets[id]),
      };
      if ((change.added.length || change.removed.length) && options.onLayoutChange) {
        options.onLayoutChange(change);
      }
      return change;
    }

    // After the tiles changed size or the board became visible. A changed scale (the window
    // was resized) redraws the charts with sizes to match.
    function resize() {
      if (last && readScale() !== scale) {
        render(last);
        return;
      }
      for (const [id, chart] of charts) {
        const gauge = gauges.get(id);
        const tile = chart.getDom().closest(".tile");
        if (gauge && tile) renderGauge(tile, id, gauge);
        else chart.resize();
      }
    }

    function destroy() {
      if (resizer) resizer.disconnect();
      for (const id of [...charts.keys()]) dropChart(id);
    }

    if (snapshot) render(snapshot);
    return { render: render, resize: resize, destroy: destroy };
  }

  // ---- connect: one live websocket, kept up ------------------------------------------------

  // Opens `url` and keeps it open. The server sends {"type": "data", ...snapshot} at once and
  // after every change, and {"type": "closed", "reason": code} just before it closes. Handlers:
  //   onOpen();  onData(message);
  //   onClose(code, reason) -> "stop" (give up), "now" (reconnect at once) or anything else
  //          (reconnect with exponential backoff and jitter);
  //   onRetry(delayMs): a reconnect is scheduled.
  // The browser coming back online reconnects at once. close() ends it for good.
  function connect(url, handlers) {
    handlers = handlers || {};
    let socket = null;
    let attempt = 0;
    let retryTimer = null;
    let stopped = false;
    let closedReason = "";

    function call(name, ...args) {
      if (typeof handlers[name] === "function") return handlers[name](...args);
      return undefined;
    }

    function open() {
      if (stopped) return;
      clearTimeout(retryTimer);
      retryTimer = null;
      closedReason = "";
      let current;
      try {
        current = socket = new WebSocket(url);
      } catch (error) {
        socket = null;
        scheduleRetry(false);
        return;
      }
      current.addEventListener("open", () => {
        if (current === socket) call("onOpen");
      });
      current.addEventListener("message", (event) => {
        if (current !== socket || stopped) return;
        let message;
        try {
          message = JSON.parse(event.data);
        } catch (error) {
          return;
        }
        if (!message || typeof message !== "object") return;
        if (message.type === "data") {
          attempt = 0;
          call("onData", message);
        } else if (message.type === "closed") {
          closedReason = String(message.reason || "");
        }
      });
      current.addEventListener("close", (event) => {
        if (current !== socket) return;
        socket = null;
        if (stopped) return;
        const verdict = call("onClose", event.code, closedReason);
        if (verdict === "stop") {
          close();
          return;
        }
        scheduleRetry(verdict === "now");
      });
    }

    function scheduleRetry(now) {
      if (stopped || retryTimer) return;
      // Exponential backoff with jitter: screens that lost the server together do not all
      // come back in the same instant. "Now" is now only once until data arrives again, so a
      // server that keeps closing is not hammered.
      const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
      const delay = now && attempt === 0
        ? Math.random() * 250
        : ceiling / 2 + Math.random() * ceiling / 2;
      attempt = Math.min(attempt + 1, 10);
      retryTimer = setTimeout(() => {
        retryTimer = null;
        open();
      }, delay);
      call("onRetry", delay);
    }

    function online() {
      if (!socket && !stopped) {
        attempt = 0;
        clearTimeout(retryTimer);
        retryTimer = null;
        open();
      }
    }

    function close() {
      stopped = true;
      clearTimeout(retryTimer);
      retryTimer = null;
      window.removeEventListener("online", online);
      const current = socket;
      socket = null;
      if (current) {
        try {
          current.close(1000);
        } catch (error) {
          // already closing
        }
      }
    }

    window.addEventListener("online", online);
    open();
    return { close: close };
  }

  window.dashvaultBoard = Object.freeze({
    mount: mount,
    connect: connect,
    ago: ago,
    formatValue: formatValue,
  });
})();
