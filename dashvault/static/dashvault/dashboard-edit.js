// Editing a dashboard: the widget form shows only the options of the chosen kind, and on the
// edit page tiles move and resize by drag and drop or by their buttons, without a reload.
// Every change goes through the same form endpoints a browser without JavaScript uses.
(function () {
  "use strict";

  // ---- widget form: options of the chosen kind only -------------------------------------

  const kindSelect = document.getElementById("id_kind");
  if (kindSelect) {
    const showKind = () => {
      for (const field of document.querySelectorAll("[data-kinds]")) {
        const kinds = field.dataset.kinds.split(" ");
        field.hidden = !kinds.includes(kindSelect.value);
      }
    };
    kindSelect.addEventListener("change", showKind);
    showKind();
  }

  // ---- edit page: arrange tiles ----------------------------------------------------------

  const board = document.getElementById("board");
  const grid = document.getElementById("grid");
  if (!board || !grid || !grid.classList.contains("editing")) return;

  const COLUMNS = 12;
  const MAX_ROWS = 100;
  const MAX_HEIGHT = 12;
  const errorBox = document.getElementById("arrange-errors");

  function placeClasses(node, place) {
    for (const name of [...node.classList]) {
      if (/^g[xywh]-\d+$/.test(name)) node.classList.remove(name);
    }
    node.classList.add("gx-" + place.x, "gy-" + place.y, "gw-" + place.w, "gh-" + place.h);
  }

  function applyLayout(layout) {
    for (const [id, place] of Object.entries(layout)) {
      const tile = document.getElementById("w-" + id);
      if (!tile) continue;
      placeClasses(tile, place);
      for (const key of ["x", "y", "w", "h"]) {
        tile.dataset[key] = String(place[key]);
        const input = tile.querySelector("form.arrange input[name=" + key + "]");
        if (input) input.value = String(place[key]);
      }
    }
    board.dispatchEvent(new CustomEvent("dashvault:layout"));
  }

  function showErrors(errors) {
    if (!errorBox) return;
    const list = document.createElement("ul");
    for (const [field, messages] of Object.entries(errors || {})) {
      for (const message of messages) {
        const item = document.createElement("li");
        item.textContent = field === "__all__" ? message : field + ": " + message;
        list.append(item);
      }
    }
    errorBox.replaceChildren(list);
    errorBox.hidden = !list.children.length;
  }

  async function send(form, submitter, place) {
    const body = new FormData(form, submitter || undefined);
    if (place) {
      body.delete("nudge");
      for (const key of ["x", "y", "w", "h"]) body.set(key, String(place[key]));
    }
    board.classList.add("is-saving");
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      const answer = await response.json().catch(() => ({}));
      if (response.ok && answer.layout) {
        showErrors({});
        applyLayout(answer.layout);
      } else if (response.status === 400) {
        showErrors(answer.errors);
      } else {
        showErrors({ __all__: ["Could not save the layout (HTTP " + response.status + ")."] });
      }
    } catch (error) {
      showErrors({ __all__: ["Could not reach dashvault; the layout was not saved."] });
    } finally {
      board.classList.remove("is-saving");
    }
  }

  for (const form of grid.querySelectorAll("form.arrange")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      send(form, event.submitter, null);
    });
  }

  // ---- drag and drop: move by the title bar, resize by the corner grip --------------------

  function metrics() {
    const box = grid.getBoundingClientRect();
    const style = getComputedStyle(grid);
    const columnGap = parseFloat(style.columnGap) || 0;
    const rowGap = parseFloat(style.rowGap) || 0;
    const rowHeight = parseFloat(style.gridAutoRows) || 100;
    const columnWidth = (box.width - columnGap * (COLUMNS - 1)) / COLUMNS;
    return { box, columnGap, rowGap, rowHeight, columnWidth };
  }

  function clamp(value, low, high) {
    return Math.max(low, Math.min(high, value));
  }

  function currentPlace(tile) {
    return {
      x: Number(tile.dataset.x), y: Number(tile.dataset.y),
      w: Number(tile.dataset.w), h: Number(tile.dataset.h),
    };
  }

  let drag = null;

  function startDrag(event, tile, resizing) {
    if (event.button !== 0) return;
    event.preventDefault();
    const start = currentPlace(tile);
    const rect = tile.getBoundingClientRect();
    const ghost = document.createElement("div");
    ghost.className = "drop-ghost";
    ghost.setAttribute("aria-hidden", "true");
    placeClasses(ghost, start);
    grid.append(ghost);
    tile.classList.add("is-dragging");
    drag = {
      tile, ghost, resizing, start, place: start,
      offsetX: event.clientX - rect.left,
      offsetY: event.clientY - rect.top,
      pointer: event.pointerId,
    };
    event.target.setPointerCapture(event.pointerId);
  }

  function moveDrag(event) {
    if (!drag || event.pointerId !== drag.pointer) return;
    const { start } = drag;
    const m = metrics(); // the page may have scrolled since the drag began
    const stepX = m.columnWidth + m.columnGap;
    const stepY = m.rowHeight + m.rowGap;
    let place;
    if (drag.resizing) {
      const left = m.box.left + start.x * stepX;
      const top = m.box.top + start.y * stepY;
      const w = clamp(Math.round((event.clientX - left + m.columnGap) / stepX), 1, COLUMNS - start.x);
      const h = clamp(Math.round((event.clientY - top + m.rowGap) / stepY), 1, MAX_HEIGHT);
      place = { x: start.x, y: start.y, w, h };
    } else {
      const x = clamp(Math.round((event.clientX - drag.offsetX - m.box.left) / stepX), 0,
        COLUMNS - start.w);
      const y = clamp(Math.round((event.clientY - drag.offsetY - m.box.top) / stepY), 0,
        MAX_ROWS - 1);
      place = { x, y, w: start.w, h: start.h };
    }
    drag.place = place;
    placeClasses(drag.ghost, place);
  }

  function endDrag(event) {
    if (!drag || event.pointerId !== drag.pointer) return;
    const { tile, ghost, start, place } = drag;
    drag = null;
    ghost.remove();
    tile.classList.remove("is-dragging");
    const changed = ["x", "y", "w", "h"].some((key) => place[key] !== start[key]);
    if (changed && event.type === "pointerup") {
      send(tile.querySelector("form.arrange"), null, place);
    }
  }

  for (const tile of grid.querySelectorAll(".tile[data-widget]")) {
    const handle = tile.querySelector(".tile-head");
    const grip = tile.querySelector(".resize-grip");
    if (handle) {
      handle.classList.add("drag-handle");
      handle.addEventListener("pointerdown", (event) => startDrag(event, tile, false));
    }
    if (grip) {
      grip.hidden = false;
      grip.addEventListener("pointerdown", (event) => startDrag(event, tile, true));
    }
    for (const node of [handle, grip]) {
      if (!node) continue;
      node.addEventListener("pointermove", moveDrag);
      node.addEventListener("pointerup", endDrag);
      node.addEventListener("pointercancel", endDrag);
    }
  }
})();
