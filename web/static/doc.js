// The document view: bring the cited sentence to the middle of the screen (the #cite anchor
// alone puts it at the very top) and focus it so keyboard users land on it.
(() => {
  "use strict";
  const mark = document.getElementById("cite");
  if (!mark) return;
  mark.scrollIntoView({ block: "center" });
  mark.focus({ preventScroll: true });
})();
