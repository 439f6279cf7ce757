// The TV page (/kiosk/<token>): every dashboard of the link is on the page, one shown at a
// time in rotation, each kept live over a websocket of its own. Nobody stands at a TV: the page
// mends itself (reconnects, reloads when its dashboards change) and says plainly when only a
// person can help (the link ended, this network is not allowed).
//
// State for people and tests, on <body>: data-kiosk-state (connecting | live | reconnecting |
// ended | refused | blocked), data-current-dashboard (the uuid shown), data-updated (data
// messages received so far, from any board).
(function () {
  "use strict";

  const stage = document.getElementById("kiosk-screen");
  if (!stage || !window.dashvaultBoard) return;
  const { mount, connect, ago } = window.dashvaultBoard;
  const body = document.body;
  const root = document.documentElement;

  const IDLE_CURSOR_MS = 3000;
  const RELOAD_DELAY_MS = 3000; // a dashboard left the link: reload, soon but not at once...
  const RELOAD_NOT_BEFORE_MS = 10000; // ...and never within this long of the last page load
  const BLOCKED_RETRY_MS = 5 * 60 * 1000;
  const TICK_MS = 5000;
  // Close codes the kiosk websocket ends with; anything else is a lost connection.
  const RECONNECT_NOW = 4000;
  const LINK_CHANGED = 4001; // the link's settings changed: reload to meet them
  const DASHBOARD_GONE = 4404;
  const ENDINGS = {
    4410: {
      state: "ended",
      title: "This kiosk link no longer works",
      text: "It was revoked, replaced or has expired. Ask your dashvault admin for a new link.",
    },
    4403: {
      state: "refused",
      title: "This screen's network address is not allowed for this organization.",
      text: "Ask your dashvault admin to allow this network for kiosk screens.",
      retryMs: BLOCKED_RETRY_MS, // once the network is allowed, the screen comes back alone
    },
    4429: {
      state: "blocked",
      title: "Too many invalid kiosk links were tried from this network. Try again later.",
      text: "This screen tries again by itself in a few minutes.",
      retryMs: BLOCKED_RETRY_MS,
    },
  };

  const loadedAt = Date.now();
  const title = document.getElementById("kiosk-title");
  const liveText = document.getElementById("kiosk-live-text");
  const updatedText = document.getElementById("kiosk-updated");
  const pageCount = document.getElementById("kiosk-page-count");
  const pageDots = [...document.querySelectorAll("#kiosk-pages [data-dashboard]")];
  const reconnecting = document.getElementById("kiosk-reconnecting");
  const ending = document.getElementById("kiosk-ended");
  const fullscreenButton = document.getElementById("kiosk-fullscreen");
  const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

  let updates = 0;
  let current = 0;
  let rotationTimer = null;
  let terminal = null; // the ENDINGS entry once the page has stopped for good
  let reloadTimer = null;

  // ---- the boards ---------------------------------------------------------------------------

  // Chart text, lines and gaps follow the page's type size, which follows the viewport.
  function scale() {
    return (parseFloat(getComputedStyle(root).fontSize) || 16) / 14;
  }

  function readSnapshot(section) {
    const node = document.getElementById(section.dataset.snapshot || "");
    try {
      return node ? JSON.parse(node.textContent) : { widgets: {} };
    } catch (error) {
      return { widgets: {} };
    }
  }

  let starting = true;
  const boards = [...document.querySelectorAll(".kiosk-board[data-dashboard]")].map(
    (section) => {
      const board = {
        section: section,
        id: section.dataset.dashboard,
        title: section.dataset.title || "",
        state: "connecting", // connecting | live | retrying | stopped
        lastUpdate: Date.now(), // the embedded data is as fresh as the page
        live: null,
        view: null,
      };
      board.view = mount(section, readSnapshot(section), {
        theme: "dark",
        scale: scale,
        // An editor added or removed widgets: a TV has nobody to press reload.
        onLayoutChange: () => {
          if (!starting) reloadSoon();
        },
      });
      section.dataset.rendered = "1";
      return board;
    },
  );
  starting = false;

  // ---- what the screen shows: state, title, pages, freshness --------------------------------

  function overallState() {
    if (terminal) return terminal.state;
    if (boards.some((board) => board.state === "retrying")) return "reconnecting";
    if (boards.length && boards.every((board) => board.state === "live" ||
      board.state === "stopped")) return "live";
    return "connecting";
  }

  function refresh() {
    const state = overallState();
    body.dataset.kioskState = state;
    if (reconnecting) reconnecting.hidden = state !== "reconnecting";
    if (liveText) {
      liveText.textContent = state === "live" ? "Live"
        : state === "reconnecting" ? "Reconnecting…"
          : state === "connecting" ? "Connecting…" : "Stopped";
    }
    for (const board of boards) {
      board.section.classList.toggle("is-stale", board.state === "retrying");
    }
    tick();
  }

  function tick() {
    const board = boards[current];
    if (!updatedText || !board) return;
    const age = (Date.now() - board.lastUpdate) / 1000;
    const at = "Updated " + clock.format(new Date(board.lastUpdate));
    updatedText.textContent = age < 60 ? at : at + " · " + ago(age);
  }

  function show(index) {
    if (!boards.length) return;
    current = (index + boards.length) % boards.length;
    const board = boards[current];
    for (const other of boards) other.section.hidden = other !== board;
    // A hidden board's charts have no size: they take their place now that it shows.
    board.view.resize();
    body.dataset.currentDashboard = board.id;
    if (title) title.textContent = board.title;
    document.title = board.title + " · dashvault";
    pageDots.forEach((dot, dotIndex) => {
      dot.classList.toggle("is-current", dotIndex === current);
      if (dotIndex === current) dot.setAttribute("aria-current", "true");
      else dot.removeAttribute("aria-current");
    });
    if (pageCount) pageCount.textContent = (current + 1) + " / " + boards.length;
    tick();
    scheduleRotation();
  }

  function scheduleRotation() {
    clearTimeout(rotationTimer);
    rotationTimer = null;
    if (terminal || boards.length < 2) return;
    let seconds = parseInt(stage.dataset.rotationSeconds, 10);
    if (!isFinite(seconds)) seconds = 30;
    seconds = Math.max(5, Math.min(3600, seconds));
    rotationTimer = setTimeout(() => show(current + 1), seconds * 1000);
  }

  // ---- live: one websocket per board ---------------------------------------------------------

  // The token is the last segment of this page's path (/kiosk/<token> or /kiosk/<token>/): the
  // page's HTML never carries it.
  const segments = window.location.pathname.split("/").filter(Boolean);
  const token = segments.length >= 2 ? segments[segments.length - 1] : "";
  const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";

  function socketUrl(board) {
    return scheme + window.location.host + "/ws/kiosk/" + token + "/" +
      encodeURIComponent(board.id) + "/";
  }

  function reloadSoon() {
    if (terminal || reloadTimer) return;
    // Jitter: the screens of an office do not all reload in the same instant. The floor keeps
    // a page that keeps being told to reload from reloading in a tight loop.
    const earliest = loadedAt + RELOAD_NOT_BEFORE_MS - Date.now();
    const delay = Math.max(RELOAD_DELAY_MS, earliest) + Math.random() * 3000;
    reloadTimer = setTimeout(() => window.location.reload(), delay);
  }

  function stopEverything(endingInfo) {
    terminal = endingInfo;
    clearTimeout(rotationTimer);
    clearTimeout(reloadTimer);
    reloadTimer = null;
    for (const board of boards) {
      if (board.live) board.live.close();
      board.live = null;
      board.state = "stopped";
    }
    if (ending) {
      const heading = ending.querySelector(".kiosk-message-title");
      const detail = ending.querySelector(".kiosk-message-text");
      if (heading) heading.textContent = endingInfo.title;
      if (detail) detail.textContent = endingInfo.text;
      ending.hidden = false;
    }
    stage.setAttribute("aria-hidden", "true");
    if (fullscreenButton) fullscreenButton.hidden = true;
    if (endingInfo.retryMs) {
      setTimeout(() => window.location.reload(), endingInfo.retryMs + Math.random() * 30000);
    }
    refresh();
  }

  function goLive(board) {
    board.live = connect(socketUrl(board), {
      onData: (message) => {
        board.lastUpdate = Date.now();
        board.state = "live";
        updates += 1;
        body.dataset.updated = String(updates);
        board.view.render(message);
        refresh();
      },
      onClose: (code) => {
        if (terminal) return "stop";
        if (ENDINGS[code]) {
          stopEverything(ENDINGS[code]);
          return "stop";
        }
        if (code === DASHBOARD_GONE || code === LINK_CHANGED) {
          // Taken off the link, or the link changed: the page reloads with the link as it is.
          board.state = "stopped";
          board.live = null;
          reloadSoon();
          refresh();
          return "stop";
        }
        board.state = "retrying";
        refresh();
        return code === RECONNECT_NOW ? "now" : "retry";
      },
    });
  }

  // ---- full screen, an idle cursor, a screen kept awake --------------------------------------

  const canFullscreen = Boolean(document.fullscreenEnabled && root.requestFullscreen);

  function toggleFullscreen() {
    if (!canFullscreen) return;
    const request = document.fullscreenElement
      ? document.exitFullscreen()
      : root.requestFullscreen({ navigationUI: "hide" });
    if (request && request.catch) request.catch(() => {}); // refused: stay as we are
  }

  function fullscreenChanged() {
    if (fullscreenButton) {
      fullscreenButton.hidden = terminal !== null || !canFullscreen ||
        Boolean(document.fullscreenElement);
    }
  }

  if (fullscreenButton) fullscreenButton.addEventListener("click", toggleFullscreen);
  document.addEventListener("fullscreenchange", fullscreenChanged);
  fullscreenChanged();

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    if (event.key === "f" || event.key === "F") {
      event.preventDefault();
      toggleFullscreen();
    } else if (event.key === "ArrowRight" && !terminal) {
      show(current + 1);
    } else if (event.key === "ArrowLeft" && !terminal) {
      show(current - 1);
    }
  });

  let idleTimer = null;
  function awake() {
    root.classList.remove("is-idle");
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => root.classList.add("is-idle"), IDLE_CURSOR_MS);
  }
  for (const name of ["mousemove", "pointerdown", "keydown"]) {
    document.addEventListener(name, awake, { passive: true });
  }
  awake();

  // A TV should not dim or sleep while it shows a dashboard (where the browser allows it).
  async function keepAwake() {
    if (!navigator.wakeLock || document.visibilityState !== "visible" || terminal) return;
    try {
      await navigator.wakeLock.request("screen");
    } catch (error) {
      // not allowed here (no permission, battery saver): the screen may dim
    }
  }
  document.addEventListener("visibilitychange", keepAwake);
  keepAwake();

  let resizeFrame = 0;
  window.addEventListener("resize", () => {
    cancelAnimationFrame(resizeFrame);
    resizeFrame = requestAnimationFrame(() => {
      if (boards[current]) boards[current].view.resize();
    });
  });

  // ---- start ------------------------------------------------------------------------------

  body.dataset.updated = "0";
  show(0);
  if (token) {
    for (const board of boards) goLive(board);
  }
  refresh();
  setInterval(tick, TICK_MS);
})();
