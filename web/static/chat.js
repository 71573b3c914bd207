// The chat with JavaScript: answers through POST /api/ask without a reload, and keeps the
// conversation in localStorage so it survives a reload. Everything from the server is put into
// the page with textContent, never innerHTML, so a question or a document cannot inject markup.
// The markup mirrors templates/_answer.html (the no-JavaScript path).
(() => {
  "use strict";

  const KEY = "citeqa.chat.v1";
  const KEEP = 50; // exchanges kept across reloads
  const SHOWN = 3; // citations shown before "n more sources"
  // Limits of POST /api/ask's `previous` (web/schemas.py): a longer doc id or answer is not sent.
  const PREVIOUS_QUESTION_CHARS = 1000;
  const PREVIOUS_DOC_ID_CHARS = 1000;
  const PREVIOUS_ANSWER_CHARS = 2000;

  const log = document.getElementById("log");
  const form = document.getElementById("ask");
  const input = document.getElementById("question");
  const send = document.getElementById("send");
  const welcome = document.getElementById("welcome");
  const clearBtn = document.getElementById("clear");

  // --- storage ------------------------------------------------------------------------------
  function load() {
    try {
      const items = JSON.parse(localStorage.getItem(KEY) || "[]");
      // An answer kept by an earlier version has no `view` (how to show it, computed by the server): dropped.
      const shown = (i) => i && typeof i.question === "string" && (!i.answer || (i.answer.view && Array.isArray(i.answer.view.marks)));
      return Array.isArray(items) ? items.filter(shown) : [];
    } catch (_) {
      return [];
    }
  }
  function save() {
    try {
      localStorage.setItem(KEY, JSON.stringify(history.slice(-KEEP)));
    } catch (_) {
      /* private mode or full: the chat still works, it just forgets */
    }
  }
  let history = load();

  // --- the API key, when the server needs one (web/auth.py) ------------------------------------
  // Asked once per browser session: kept in sessionStorage (gone when the tab's session ends) and
  // sent as `Authorization: Bearer …` with every API call. POST /api/session checks it and sets the
  // session cookie the pages (a citation's document view, Documents) are opened with.
  const KEY_STORE = "citeqa.key";
  const needsKey = document.body.dataset.keys === "required";
  const keyForm = document.getElementById("key-form");
  const keyInput = document.getElementById("key-input");
  const keyError = document.getElementById("key-error");
  const signedIn = document.getElementById("signed-in");
  function storedKey() {
    try {
      return sessionStorage.getItem(KEY_STORE);
    } catch (_) {
      return null;
    }
  }
  let apiKey = needsKey ? storedKey() : null;
  let keyScope = needsKey ? null : "write";
  function authHeaders(headers) {
    return apiKey ? Object.assign({}, headers, { authorization: `Bearer ${apiKey}` }) : headers;
  }
  function askForKey(message) {
    apiKey = null;
    keyScope = null;
    try {
      sessionStorage.removeItem(KEY_STORE);
    } catch (_) {
      /* nothing kept */
    }
    if (signedIn) signedIn.hidden = true;
    if (keyForm) {
      keyForm.hidden = false;
      keyError.hidden = !message;
      keyError.textContent = message || "";
      keyInput.focus();
    }
    showUpload();
  }
  async function useKey(key, quiet) {
    let res;
    try {
      res = await fetch("/api/session", { method: "POST", headers: { authorization: `Bearer ${key}`, accept: "application/json" } });
    } catch (_) {
      if (!quiet) askForKey("Could not reach the citeqa server. Is it still running?");
      return false;
    }
    if (!res.ok) {
      askForKey(quiet ? "" : res.status === 401 ? "That key is not valid; check it and try again." : `The server said ${res.status}.`);
      return false;
    }
    const body = await res.json();
    apiKey = key;
    keyScope = body.scope;
    try {
      sessionStorage.setItem(KEY_STORE, key);
    } catch (_) {
      /* kept for this page only */
    }
    if (keyForm) keyForm.hidden = true;
    if (signedIn) {
      signedIn.textContent = `${body.name} (${body.scope})`;
      signedIn.hidden = false;
    }
    showUpload();
    return true;
  }
  if (keyForm) {
    keyForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const key = keyInput.value.trim();
      if (!key) return;
      if (await useKey(key, false)) {
        keyInput.value = "";
        input.focus();
      }
    });
  }

  // --- helpers (mirror web/views.py) ----------------------------------------------------------
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  function prettyDate(iso) {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso || "");
    return m ? `${Number(m[3])} ${MONTHS[Number(m[2]) - 1]} ${m[1]}` : iso;
  }
  function docHref(docId, start, end, aStart, aEnd) {
    const path = docId.split("/").map(encodeURIComponent).join("/");
    const q = new URLSearchParams({ start: String(start), end: String(end) });
    if (Number.isInteger(aStart) && Number.isInteger(aEnd)) {
      q.set("astart", String(aStart));
      q.set("aend", String(aEnd));
    }
    return `/doc/${path}?${q}#cite`;
  }
  function scrollDown() {
    log.scrollTop = log.scrollHeight;
  }
  // A long answer would push its answer phrase out of sight at the bottom: show the exchange from its question.
  function reveal(node) {
    node.scrollIntoView({ block: "start", behavior: "auto" });
  }

  // --- rendering ----------------------------------------------------------------------------
  function renderCitation(a, c, i, mine) {
    const li = el("li", "cite-item");
    const s = c.sentence;
    // The document view highlights one answer span: this citation's first.
    let href = mine.length ? docHref(c.doc_id, c.start, c.end, c.start + mine[0][0], c.start + mine[0][1]) : docHref(c.doc_id, c.start, c.end);
    if (i === 0 && a.answer_source === "document_date" && a.answer_doc_id === c.doc_id) {
      href = docHref(c.doc_id, c.start, c.end, a.answer_doc_start, a.answer_doc_end);
    }
    const num = el("a", "num", `[${i + 1}]`);
    num.href = href;
    num.setAttribute("aria-label", `open source ${i + 1} in its document`);
    const body = el("div", "cite-body");
    const quote = el("blockquote", "sentence");
    let at = 0;
    for (const [ms, me] of mine) {
      if (ms > at) quote.append(s.slice(at, ms));
      quote.append(el("mark", "answer", s.slice(ms, me)));
      at = me;
    }
    if (at < s.length || !mine.length) quote.append(s.slice(at));
    const meta = el("div", "cite-meta");
    const link = el("a", "cite-link", c.title);
    link.href = href;
    link.dataset.doc = c.doc_id;
    link.title = `${c.title} (${c.doc_id})`;
    meta.append(link);
    if (c.date) {
      const t = el("time", null, prettyDate(c.date));
      t.dateTime = c.date;
      meta.append(t);
    }
    if (Number.isInteger(c.page)) meta.append(el("span", "page", `p. ${c.page}`));
    meta.append(el("span", "doc-id", c.doc_id));
    body.append(quote, meta);
    li.append(num, body);
    return li;
  }

  function renderAnswer(a) {
    const box = el("div", `msg bot ${a.abstained ? "abstained" : "answered"}`);
    const within = a.view && typeof a.view.within === "string" && a.view.within ? a.view.within : null;
    if (within) box.append(el("p", "within-note", `Within: ${within}`));
    if (a.abstained) {
      box.append(el("p", "verdict abstain", "The documents don't say."));
      if (typeof a.answer_note === "string" && a.answer_note) {
        box.append(el("p", "note answer-note", `${a.answer_note.charAt(0).toUpperCase()}${a.answer_note.slice(1)}.`));
      }
      if (a.citations && a.citations.length) {
        const note = el("p", "note", `Nothing in ${within ? "these" : "the indexed"} documents answers this question (confidence ${a.confidence.toFixed(2)}). The nearest passages are below — `);
        note.append(el("strong", null, "they are not an answer"), ".");
        box.append(note);
      }
    } else {
      const verdict = el("p", "verdict");
      const lv = a.view.level;
      const conf = el("span", `conf conf-${lv}`);
      conf.title = `confidence ${a.confidence.toFixed(2)}`;
      const dots = el("span", "dots");
      dots.setAttribute("aria-hidden", "true");
      dots.append(el("i"), el("i"), el("i"));
      conf.append(dots, `${lv} confidence`);
      verdict.append(el("span", "answer-phrase", a.view.phrase), " ", conf);
      box.append(verdict);
      if (typeof a.answer_note === "string" && a.answer_note) {
        if (a.answer_source === "document_date") {
          const note = el("p", "note date-note");
          if (a.answer_doc_id != null) {
            const l = el("a", null, "Date of the document");
            l.href = docHref(a.answer_doc_id, a.answer_doc_start, a.answer_doc_end);
            note.append(l);
          } else {
            note.append("Date of the document");
          }
          note.append(`: ${a.answer_note}.`);
          box.append(note);
        } else {
          box.append(el("p", "note answer-note", `${a.answer_note.charAt(0).toUpperCase()}${a.answer_note.slice(1)}.`));
        }
      }
    }
    if (a.citations && a.citations.length) {
      // Where to highlight the answer, per citation: computed once, by the server (qa/view.py).
      const marks = a.view.marks;
      const sources = el("div", a.abstained ? "sources nearest" : "sources");
      sources.append(el("p", "sources-label", a.abstained ? "Nearest passages — not an answer" : "Sources"));
      const ol = el("ol", "cites");
      a.citations.slice(0, SHOWN).forEach((c, i) => ol.append(renderCitation(a, c, i, marks[i] || [])));
      sources.append(ol);
      if (a.citations.length > SHOWN) {
        const more = el("details", "more");
        const n = a.citations.length - SHOWN;
        more.append(el("summary", null, `${n} more ${a.abstained ? "passages" : "sources"}`));
        const rest = el("ol", "cites");
        rest.start = SHOWN + 1;
        a.citations.slice(SHOWN).forEach((c, j) => rest.append(renderCitation(a, c, SHOWN + j, marks[SHOWN + j] || [])));
        more.append(rest);
        sources.append(more);
      }
      box.append(sources);
    }
    return box;
  }

  function renderExchange(item) {
    const wrap = el("div", "exchange");
    const user = el("div", "msg user");
    user.append(el("p", null, item.question));
    wrap.append(user);
    // How a follow-up was read, so the user sees what was searched for.
    if (item.answer && typeof item.answer.resolved_question === "string" && item.answer.resolved_question) {
      wrap.append(el("p", "read-as", `(read as: ${item.answer.resolved_question})`));
    }
    if (item.answer) {
      wrap.append(renderAnswer(item.answer));
      wrap.append(renderFeedback(item));
    } else {
      const err = el("div", "msg bot error");
      err.setAttribute("role", "alert");
      err.append(el("p", null, item.error || "Something went wrong."));
      wrap.append(err);
    }
    return wrap;
  }

  // --- feedback: right / wrong under each answer (POST /api/feedback) ---------------------------
  // "Wrong" asks which cited sentence answers instead, or whether the documents don't answer it.
  let feedbackForms = 0;
  function feedbackThanks(fb) {
    if (fb.verdict === "right") return "Thanks — marked right.";
    return fb.correct ? "Thanks — marked wrong, with the sentence that answers." : "Thanks — marked wrong: the documents don't answer it.";
  }
  async function sendFeedback(item, bar, verdict, correct) {
    const status = bar.querySelector(".feedback-status") || bar.appendChild(el("p", "feedback-status"));
    status.textContent = "Sending…";
    let res;
    let body = null;
    try {
      res = await fetch("/api/feedback", {
        method: "POST",
        headers: authHeaders({ "content-type": "application/json", accept: "application/json" }),
        body: JSON.stringify({ question: item.question, verdict, correct, answer: item.answer }),
      });
      try {
        body = await res.json();
      } catch (_) {
        body = null;
      }
    } catch (_) {
      status.textContent = "Could not reach the citeqa server. Is it still running?";
      return;
    }
    if (res.status === 201) {
      item.feedback = { verdict, correct };
      save();
      bar.replaceWith(renderFeedback(item));
    } else {
      if (res.status === 401 && needsKey) askForKey("Your key was not accepted; enter it again.");
      status.textContent = `Could not record it: ${body && typeof body.detail === "string" ? body.detail : res.status}`;
    }
  }
  function renderFeedback(item) {
    const bar = el("div", "feedback");
    if (item.feedback) {
      bar.append(el("p", "feedback-done", feedbackThanks(item.feedback)));
      return bar;
    }
    bar.append(el("span", "feedback-label", "Was this right?"));
    const right = el("button", "feedback-right linkish", "Right");
    const wrong = el("button", "feedback-wrong linkish", "Wrong");
    right.type = wrong.type = "button";
    right.addEventListener("click", () => sendFeedback(item, bar, "right", null));
    wrong.addEventListener("click", () => {
      if (bar.querySelector(".feedback-choose")) return;
      const name = `fb-${++feedbackForms}`;
      const form = el("form", "feedback-choose");
      const set = el("fieldset");
      set.append(el("legend", null, "Which sentence answers it?"));
      (item.answer.citations || []).forEach((c, i) => {
        const label = el("label", "feedback-option");
        const radio = el("input");
        radio.type = "radio";
        radio.name = name;
        radio.value = String(i);
        label.append(radio, ` [${i + 1}] ${c.sentence}`);
        set.append(label);
      });
      const none = el("label", "feedback-option feedback-none");
      const radio = el("input");
      radio.type = "radio";
      radio.name = name;
      radio.value = "none";
      none.append(radio, " The documents don't answer it");
      set.append(none);
      const send = el("button", "feedback-send", "Send");
      send.type = "submit";
      // Or another sentence of a cited document: picked in the document view (static/doc.js).
      const elsewhere = el("p", "feedback-elsewhere", "Or pick the sentence in the document: ");
      const docs = [...new Map((item.answer.citations || []).map((c) => [c.doc_id, c])).values()];
      docs.forEach((c, i) => {
        const link = el("a", "feedback-pick", c.title || c.doc_id);
        link.href = `/doc/${c.doc_id.split("/").map(encodeURIComponent).join("/")}?pick=1`;
        link.addEventListener("click", () => {
          try {
            sessionStorage.setItem("citeqa.pick", JSON.stringify({ question: item.question, answer: item.answer, at: history.indexOf(item) }));
          } catch (_) {
            /* the document view says how to come back */
          }
        });
        if (i) elsewhere.append(" · ");
        elsewhere.append(link);
      });
      form.append(set, send, elsewhere);
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        const picked = form.querySelector(`input[name="${name}"]:checked`);
        if (!picked) return;
        const c = picked.value === "none" ? null : item.answer.citations[Number(picked.value)];
        sendFeedback(item, bar, "wrong", c ? { doc_id: c.doc_id, start: c.start, end: c.end } : null);
      });
      bar.append(form);
    });
    bar.append(right, wrong);
    return bar;
  }

  function showWelcome(show) {
    welcome.hidden = !show;
    clearBtn.hidden = show;
  }

  function renderAll() {
    log.querySelectorAll(".exchange").forEach((e) => e.remove());
    let last = null;
    history.forEach((item) => {
      last = renderExchange(item);
      log.append(last);
    });
    showWelcome(history.length === 0);
    if (last) reveal(last);
  }

  // --- asking -------------------------------------------------------------------------------
  // The turn a new question may follow up on ("who welcomed that?"): the last exchange, unless it
  // abstained or failed. Sent as `previous`; the server decides whether the question is a follow-up.
  function previousTurn() {
    const last = history[history.length - 1];
    const a = last && last.answer;
    if (!a || a.abstained || typeof last.question !== "string" || !last.question.trim()) return null;
    if (last.question.length > PREVIOUS_QUESTION_CHARS) return null;
    const first = Array.isArray(a.citations) && a.citations.length ? a.citations[0] : null;
    const docId = first && typeof first.doc_id === "string" && first.doc_id.length <= PREVIOUS_DOC_ID_CHARS ? first.doc_id : null;
    const answer = typeof a.answer === "string" && a.answer.length <= PREVIOUS_ANSWER_CHARS ? a.answer : null;
    return { question: last.question, doc_id: docId, answer };
  }

  // --- asking within some documents --------------------------------------------------------
  // The filter fields (templates/chat.html) as POST /api/ask's `filter`; null when all are empty.
  const FILTER_FIELDS = [["f-doc", "doc_ids"], ["f-folder", "folder"], ["f-since", "date_from"], ["f-until", "date_to"]];
  const withinSummary = document.getElementById("within-summary");
  const withinClear = document.getElementById("within-clear");
  function currentFilter() {
    const f = {};
    for (const [id, name] of FILTER_FIELDS) {
      const input = document.getElementById(id);
      const v = input ? input.value.trim() : "";
      if (v) f[name] = name === "doc_ids" ? [v] : v;
    }
    return Object.keys(f).length ? f : null;
  }
  function showFilter() {
    const f = currentFilter();
    if (withinSummary) withinSummary.textContent = f ? "(filter on)" : "all documents";
    if (withinClear) withinClear.hidden = !f;
  }
  for (const [id] of FILTER_FIELDS) {
    const input = document.getElementById(id);
    if (input) input.addEventListener("input", showFilter);
  }
  if (withinClear) {
    withinClear.addEventListener("click", () => {
      for (const [id] of FILTER_FIELDS) {
        const input = document.getElementById(id);
        if (input) input.value = "";
      }
      showFilter();
    });
  }
  showFilter();

  let busy = false;
  function setBusy(on) {
    busy = on;
    form.classList.toggle("busy", on);
    send.disabled = on;
    send.textContent = on ? "…" : "Ask";
    log.setAttribute("aria-busy", on ? "true" : "false");
  }

  async function ask(question) {
    if (busy || !question.trim()) return;
    if (needsKey && !apiKey) {
      askForKey("Enter your API key first.");
      input.value = question;
      return;
    }
    const previous = previousTurn();
    const filter = currentFilter();
    setBusy(true);
    showWelcome(false);
    const wrap = el("div", "exchange");
    const user = el("div", "msg user");
    user.append(el("p", null, question));
    const pending = el("div", "msg bot pending");
    pending.setAttribute("role", "status");
    pending.append(el("p", null, "Searching the documents"), el("span", "typing"));
    wrap.append(user, pending);
    log.append(wrap);
    scrollDown();
    let item;
    try {
      const res = await fetch("/api/ask", {
        method: "POST",
        headers: authHeaders({ "content-type": "application/json", accept: "application/json" }),
        body: JSON.stringify(Object.assign({ question }, previous ? { previous } : {}, filter ? { filter } : {})),
      });
      let body = null;
      try {
        body = await res.json();
      } catch (_) {
        body = null;
      }
      if (res.ok && body) {
        item = { question, answer: body };
      } else if (res.status === 401 && needsKey) {
        askForKey("Your key was not accepted; enter it again.");
        item = { question, error: "Could not answer: this server needs a valid API key." };
      } else {
        const why = body && typeof body.detail === "string" ? body.detail : `${res.status} ${res.statusText}`;
        item = { question, error: `Could not answer: ${why}` };
      }
    } catch (e) {
      item = { question, error: "Could not reach the citeqa server. Is it still running?" };
    }
    history.push(item);
    history = history.slice(-KEEP);
    save();
    // A question that got no answer goes back into the box (unless a new one is being typed), so nothing is lost.
    if (item.error && !input.value.trim()) {
      input.value = question;
      autosize();
    }
    const done = renderExchange(item);
    wrap.replaceWith(done);
    reveal(done);
    setBusy(false);
    input.focus();
  }

  // --- wiring -------------------------------------------------------------------------------
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = input.value;
    if (!q.trim()) {
      input.focus();
      return;
    }
    input.value = "";
    autosize();
    ask(q);
  });

  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      form.requestSubmit();
    }
  });

  function autosize() {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
  }
  input.addEventListener("input", autosize);

  log.addEventListener("click", (ev) => {
    const ex = ev.target.closest("a.example");
    if (!ex) return;
    ev.preventDefault();
    ask(ex.dataset.q);
  });

  clearBtn.addEventListener("click", () => {
    history = [];
    save();
    renderAll();
    input.focus();
  });

  // --- adding a document -------------------------------------------------------------------
  // The + button opens the file picker; the file goes to POST /api/documents and the index the
  // next question reads already holds it. The line above the box says what happened.
  const uploadBtn = document.getElementById("upload");
  const uploadFile = document.getElementById("upload-file");
  const uploadStatus = document.getElementById("upload-status");
  function showStatus(text, kind) {
    uploadStatus.textContent = text;
    uploadStatus.className = `upload-status ${kind}`;
    uploadStatus.hidden = false;
  }
  async function upload(file) {
    uploadBtn.disabled = true;
    showStatus(`Adding ${file.name}…`, "pending");
    const data = new FormData();
    data.append("file", file, file.name);
    try {
      const res = await fetch("/api/documents", { method: "POST", body: data, headers: authHeaders({ accept: "application/json" }) });
      let body = null;
      try {
        body = await res.json();
      } catch (_) {
        body = null;
      }
      if (res.ok && body && typeof body.message === "string") {
        showStatus(`${body.message.charAt(0).toUpperCase()}${body.message.slice(1)}.`, "ok");
      } else {
        const why = body && typeof body.detail === "string" ? body.detail : `${res.status} ${res.statusText}`;
        showStatus(`Could not add ${file.name}: ${why}`, "error");
      }
    } catch (_) {
      showStatus("Could not reach the citeqa server. Is it still running?", "error");
    } finally {
      uploadFile.value = "";
      uploadBtn.disabled = false;
    }
  }
  // A read key cannot upload: the + button is shown for a write key (or a server without keys).
  function showUpload() {
    if (uploadBtn && uploadFile && uploadStatus && !input.disabled) uploadBtn.hidden = keyScope !== "write";
  }
  if (uploadBtn && uploadFile && uploadStatus && !input.disabled) {
    showUpload();
    uploadBtn.addEventListener("click", () => uploadFile.click());
    uploadFile.addEventListener("change", () => {
      const file = uploadFile.files && uploadFile.files[0];
      if (file) upload(file);
    });
  }

  // A page the server rendered (no-JS form, or /?q=…) joins the history; the address goes back
  // to / so a reload shows the history instead of asking again.
  const initial = document.getElementById("initial");
  if (initial) {
    try {
      const item = JSON.parse(initial.textContent);
      if (item && typeof item.question === "string") {
        history.push(item);
        history = history.slice(-KEEP);
        save();
      }
    } catch (_) {
      /* ignore */
    }
    initial.remove();
    window.history.replaceState(null, "", "/");
  }
  const serverExchange = document.getElementById("server-exchange");
  if (serverExchange) serverExchange.remove();
  renderAll();
  if (needsKey) {
    if (apiKey) useKey(apiKey, true);
    else askForKey("");
  }
  if (input.value) autosize(); // a question the server handed back after an error
  // Focus the box on desktops; on phones it would pop the keyboard over the page.
  if (!input.disabled && !window.matchMedia("(pointer: coarse)").matches) input.focus();
})();
