// The dashboard page: draws every widget from the embedded data, then keeps it live over the
// dashboard's websocket. The page's CSP allows no inline script or style: everything here
// builds DOM nodes, sets text with textContent (never innerHTML with data) and places things
// through element.style (CSSOM), which the CSP allows.
(function () {
  "use strict";

  const board = document.getElementById("board");
  const embedded = document.getElementById("dashboard-data");
  if (!board || !embedded) return;

  const STOP_CODES = {
    4401: "You were signed out. Sign in again to see live data.",
    4403: "You no longer have access to this dashboard.",
    4404: "This dashboard is no longer available to you.",
  };
  const BACKOFF_BASE_MS = 1000;
  const BACKOFF_MAX_MS = 30000;
  const PALETTE = ["#2257d6", "#12a594", "#e5484d", "#f5a524", "#8e4ec6", "#0091ff",
    "#d6409f", "#5b6b7f", "#46a758", "#ab6400"];
  const charts = new Map(); // widget id -> ECharts instance
  const gauges = new Map(); // widget id -> last gauge payload (its text scales with its size)
  const resizer = typeof ResizeObserver === "function"
    ? new ResizeObserver((entries) => {
      for (const entry of entries) {
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

  // ---- widgets ---------------------------------------------------------------------------

  function tileBody(tile) {
    return tile.querySelector(".tile-body");
  }

  function dropChart(id) {
    const chart = charts.get(id);
    if (chart) {
      chart.dispose();
      charts.delete(id);
    }
    gauges.delete(id);
  }

  function emptyNote(body, text) {
    body.replaceChildren(el("p", "tile-empty", text));
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

  function setSubtitle(tile, text) {
    const sub = tile.querySelector(".tile-sub");
    if (sub) sub.textContent = text;
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
      color: PALETTE,
      animationDuration: 300,
      animationDurationUpdate: 300,
      textStyle: { fontFamily: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif" },
      grid: { left: 8, right: 24, top: many ? 36 : 12, bottom: 4, containLabel: true },
      // HTML tooltips need inline styles, which the CSP refuses: rich text draws on canvas.
      tooltip: {
        trigger: "axis",
        renderMode: "richText",
        valueFormatter: (v) => formatValue(v, data.unit, data.currency, false),
      },
      legend: many
        ? { type: "scroll", top: 0, icon: "roundRect", itemWidth: 12, itemHeight: 8 }
        : { show: false },
      xAxis: {
        type: "category",
        data: data.labels,
        boundaryGap: !line,
        axisTick: { show: false },
        axisLine: { lineStyle: { color: "#c9d0db" } },
        axisLabel: { color: "#5d6778", hideOverlap: true },
      },
      yAxis: {
        type: "value",
        splitNumber: 4,
        axisLabel: {
          color: "#5d6778",
          formatter: (v) => formatValue(v, data.unit, data.currency, true),
        },
        splitLine: { lineStyle: { color: "#edf0f4" } },
      },
      series: data.series.map((s) => ({
        name: s.name,
        type: line ? "line" : "bar",
        data: s.values,
        smooth: false,
        showSymbol: line && data.labels.length <= 16,
        symbolSize: 6,
        lineStyle: line ? { width: 2.5 } : undefined,
        areaStyle: line && !many ? { opacity: 0.12 } : undefined,
        barMaxWidth: 28,
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
    // The arc and the number scale with the space the tile gives the chart.
    chart.resize();
    const box = chart.getDom();
    const radius = Math.max(24, Math.min(box.clientWidth / 2, box.clientHeight * 0.62) * 0.9);
    const text = String(data.display || "");
    const fontSize = Math.round(Math.max(12, Math.min(36, radius * 0.36,
      (radius * 1.7) / Math.max(4, text.length * 0.62))));
    const width = Math.round(Math.max(6, Math.min(18, radius * 0.14)));
    chart.setOption({
      series: [{
        type: "gauge",
        min: 0,
        max: data.max,
        startAngle: 200,
        endAngle: -20,
        radius: radius,
        center: ["50%", "62%"],
        progress: { show: true, width: width, roundCap: true, itemStyle: { color: "#2257d6" } },
        axisLine: { roundCap: true, lineStyle: { width: width, color: [[1, "#e6eaf0"]] } },
        pointer: { show: false },
        axisTick: { show: false },
        splitLine: { show: false },
        axisLabel: { show: false },
        anchor: { show: false },
        title: { show: false },
        detail: {
          valueAnimation: false,
          offsetCenter: [0, "-4%"],
          fontSize: fontSize,
          fontFamily: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif",
          fontWeight: 700,
          color: "#1c2330",
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
    const body = tileBody(tile);
    body.replaceChildren(el("p", "text-widget", data.text || ""));
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

  function render(snapshot) {
    const widgets = snapshot.widgets || {};
    const seen = new Set();
    for (const tile of board.querySelectorAll(".tile[data-widget]")) {
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
    const added = Object.keys(widgets).some((id) => !seen.has(id));
    const removed = [...seen].some((id) => !widgets[id]);
    if (added || removed) {
      notice("This dashboard was changed by an editor.", "Reload to see its new layout");
    }
  }

  // ---- status: live / stale / stopped -----------------------------------------------------

  const badge = document.getElementById("live-badge");
  const updated = document.getElementById("updated");
  const noticeBox = document.getElementById("board-notice");
  let lastUpdate = Date.now();
  let nextTry = 0;
  let mode = "connecting"; // connecting | live | stale | stopped

  function notice(text, reloadLabel) {
    if (!noticeBox) return;
    noticeBox.replaceChildren(el("span", "", text));
    if (reloadLabel) {
      const button = el("button", "link-button", reloadLabel);
      button.type = "button";
      button.addEventListener("click", () => window.location.reload());
      noticeBox.append(" ", button);
    }
    noticeBox.hidden = false;
  }

  function setMode(next) {
    mode = next;
    board.classList.toggle("is-live", next === "live");
    board.classList.toggle("is-stale", next === "stale" || next === "stopped");
    board.classList.toggle("is-stopped", next === "stopped");
    board.dataset.liveState = next;
    tick();
  }

  function tick() {
    const age = (Date.now() - lastUpdate) / 1000;
    if (updated) updated.textContent = "Updated " + ago(age);
    if (!badge) return;
    if (mode === "live") {
      badge.textContent = "Live";
    } else if (mode === "connecting") {
      badge.textContent = "Connecting…";
    } else if (mode === "stopped") {
      badge.textContent = "Stale · not updating";
    } else {
      const wait = Math.max(0, Math.ceil((nextTry - Date.now()) / 1000));
      badge.textContent = wait > 0 ? "Stale · reconnecting in " + wait + " s" : "Stale · reconnecting…";
    }
  }

  // ---- live connection --------------------------------------------------------------------

  let socket = null;
  let attempt = 0;
  let retryTimer = null;
  let stopped = false;
  let closedReason = "";

  function socketUrl() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    return scheme + window.location.host + board.dataset.liveUrl;
  }

  function connect() {
    if (stopped || !board.dataset.liveUrl) return;
    clearTimeout(retryTimer);
    retryTimer = null;
    closedReason = "";
    try {
      socket = new WebSocket(socketUrl());
    } catch (error) {
      scheduleRetry();
      return;
    }
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      if (message.type === "data") {
        attempt = 0;
        lastUpdate = Date.now();
        render(message);
        setMode("live");
      } else if (message.type === "closed") {
        closedReason = String(message.reason || "");
      }
    });
    socket.addEventListener("close", (event) => {
      socket = null;
      if (STOP_CODES[event.code]) {
        stopped = true;
        setMode("stopped");
        // The server's reason is a code ("signed_out"); people read the sentence.
        board.dataset.closedReason = closedReason;
        notice(STOP_CODES[event.code], event.code === 4401 ? "Sign in again" : null);
        return;
      }
      setMode("stale");
      scheduleRetry();
    });
  }

  function scheduleRetry() {
    if (stopped || retryTimer) return;
    // Exponential backoff with jitter: screens that lost the server together do not all
    // come back in the same instant.
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
    const delay = ceiling / 2 + Math.random() * ceiling / 2;
    attempt = Math.min(attempt + 1, 10);
    nextTry = Date.now() + delay;
    retryTimer = setTimeout(() => {
      retryTimer = null;
      connect();
    }, delay);
    tick();
  }

  window.addEventListener("online", () => {
    if (!socket && !stopped) {
      attempt = 0;
      clearTimeout(retryTimer);
      retryTimer = null;
      connect();
    }
  });

  // ---- start ------------------------------------------------------------------------------

  let initial = {};
  try {
    initial = JSON.parse(embedded.textContent);
  } catch (error) {
    initial = { widgets: {} };
  }
  render(initial);
  board.dataset.rendered = "1";
  setInterval(tick, 1000);
  if (board.dataset.liveUrl) {
    setMode("connecting");
    connect();
  } else {
    tick();
  }

  // The edit page rearranges tiles: their charts follow their new size.
  board.addEventListener("dashvault:layout", () => {
    for (const chart of charts.values()) chart.resize();
  });
})();
