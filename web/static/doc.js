// The document view: bring the cited sentence to the middle of the screen (the #cite anchor
// alone puts it at the very top) and focus it so keyboard users land on it.
// Opened from an answer's "Wrong" (?pick=1), it lets the user click the sentence that answers
// instead, and sends that as feedback (POST /api/feedback), as the chat's own chooser does.
(() => {
  "use strict";
  const mark = document.getElementById("cite");
  if (mark) {
    mark.scrollIntoView({ block: "center" });
    mark.focus({ preventScroll: true });
  }

  const text = document.querySelector(".doc-text.picking");
  const banner = document.getElementById("pick-banner");
  if (!text || !banner) return;
  const PICK = "citeqa.pick"; // set by chat.js: {question, answer, at} of the answer judged wrong
  const CHAT = "citeqa.chat.v1"; // the chat's history (chat.js), where the verdict is noted
  let pending = null;
  try {
    pending = JSON.parse(sessionStorage.getItem(PICK) || "null");
  } catch (_) {
    pending = null;
  }
  if (!pending || typeof pending.question !== "string") {
    banner.textContent = "Open this from an answer's “Wrong” button in the chat to pick the sentence that answers it.";
    return;
  }
  banner.textContent = `Which sentence answers “${pending.question}”? Click it.`;
  let key = null;
  try {
    key = sessionStorage.getItem("citeqa.key");
  } catch (_) {
    key = null;
  }

  function noteInChat(correct) {
    try {
      const items = JSON.parse(localStorage.getItem(CHAT) || "[]");
      const item = items[pending.at];
      if (item && item.question === pending.question) {
        item.feedback = { verdict: "wrong", correct };
        localStorage.setItem(CHAT, JSON.stringify(items));
      }
    } catch (_) {
      /* the verdict is recorded on the server either way */
    }
  }

  async function send(span) {
    const correct = { doc_id: text.dataset.doc, start: Number(span.dataset.start), end: Number(span.dataset.end) };
    text.querySelectorAll(".pick.picked").forEach((s) => s.classList.remove("picked"));
    span.classList.add("picked");
    banner.textContent = "Sending…";
    const headers = { "content-type": "application/json", accept: "application/json" };
    if (key) headers.authorization = `Bearer ${key}`;
    let res;
    let body = null;
    try {
      res = await fetch("/api/feedback", {
        method: "POST",
        headers,
        body: JSON.stringify({ question: pending.question, verdict: "wrong", correct, answer: pending.answer }),
      });
      body = await res.json().catch(() => null);
    } catch (_) {
      banner.textContent = "Could not reach the citeqa server. Is it still running?";
      return;
    }
    if (res.status !== 201) {
      banner.textContent = `Could not record it: ${body && typeof body.detail === "string" ? body.detail : res.status}`;
      return;
    }
    noteInChat(correct);
    sessionStorage.removeItem(PICK);
    banner.textContent = "Thanks — recorded: this sentence answers it. ";
    const back = document.createElement("a");
    back.href = "/";
    back.id = "pick-back";
    back.textContent = "Back to the chat";
    banner.append(back);
    text.classList.remove("picking");
  }

  text.addEventListener("click", (ev) => {
    const span = ev.target.closest(".pick");
    if (span && text.classList.contains("picking")) send(span);
  });
  text.addEventListener("keydown", (ev) => {
    const span = ev.target.closest(".pick");
    if (span && (ev.key === "Enter" || ev.key === " ") && text.classList.contains("picking")) {
      ev.preventDefault();
      send(span);
    }
  });
})();
