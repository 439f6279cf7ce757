// The dashboard page: board.js draws every widget from the embedded data and keeps the board
// live over the dashboard's websocket; this file adds what the page shows around it (the live
// badge, "Updated … ago", notices) and what it does when the server ends the connection.
// The page's CSP allows no inline script or style: text is set with textContent only.
(function () {
  "use strict";

  const board = document.getElementById("board");
  const embedded = document.getElementById("dashboard-data");
  if (!board || !embedded || !window.dashvaultBoard) return;
  const { mount, connect, ago } = window.dashvaultBoard;

  // A few refusals say more than their code does.
  const REASONS = {
    address_not_allowed:
      "Your organization does not allow access from this network. Live updates stopped.",
    mfa_required: "Set up two-factor authentication to see live data.",
  };
  const STOP_CODES = {
    4401: "You were signed out. Sign in again to see live data.",
    4403: "You no longer have access to this dashboard.",
    4404: "This dashboard is no longer available to you.",
  };

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
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

  // ---- the board ----------------------------------------------------------------------------

  let initial = {};
  try {
    initial = JSON.parse(embedded.textContent);
  } catch (error) {
    initial = { widgets: {} };
  }
  const view = mount(board, initial, {
    theme: "light",
    onLayoutChange: () => {
      notice("This dashboard was changed by an editor.", "Reload to see its new layout");
    },
  });
  board.dataset.rendered = "1";
  setInterval(tick, 1000);

  // The edit page rearranges tiles: their charts follow their new size.
  board.addEventListener("dashvault:layout", () => view.resize());

  // ---- live connection --------------------------------------------------------------------

  if (!board.dataset.liveUrl) {
    tick();
    return;
  }
  const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
  setMode("connecting");
  connect(scheme + window.location.host + board.dataset.liveUrl, {
    onData: (message) => {
      lastUpdate = Date.now();
      view.render(message);
      setMode("live");
    },
    onClose: (code, reason) => {
      if (STOP_CODES[code]) {
        setMode("stopped");
        // The server's reason is a code ("signed_out"); people read the sentence.
        board.dataset.closedReason = reason;
        notice(REASONS[reason] || STOP_CODES[code], code === 4401 ? "Sign in again" : null);
        return "stop";
      }
      setMode("stale");
      return "retry";
    },
    onRetry: (delay) => {
      nextTry = Date.now() + delay;
      tick();
    },
  });
})();
