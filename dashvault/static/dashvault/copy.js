// Copy buttons: <button data-copy="input-id"> copies that input's value to the clipboard.
(function () {
  "use strict";
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const input = document.getElementById(button.dataset.copy);
      if (!input) return;
      input.select();
      try {
        await navigator.clipboard.writeText(input.value);
      } catch (error) {
        document.execCommand("copy"); // older browsers, or no clipboard permission
      }
      const done = document.getElementById(button.dataset.copy + "-copied");
      if (done) done.hidden = false;
    });
  }
})();
