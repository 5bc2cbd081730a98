// tunesmith annotate: the page's logic. Plain JS, no build step; talks to the JSON API in app.py.
"use strict";

(() => {
  const NAME_KEY = "tunesmith.annotate.annotator";
  const $ = (id) => document.getElementById(id);
  // The page's language: app.py puts the catalogue's translations of this file's t("...")
  // strings into #messages (English: none, the text itself).
  const MESSAGES = JSON.parse(($("messages") || {}).textContent || "{}");
  const t = (text, values = {}) =>
    (MESSAGES[text] || text).replace(/\{(\w+)\}/g, (all, name) =>
      name in values ? String(values[name]) : all,
    );
  const QUEUE_NAMES = { to_label: t("To label"), suspects: t("Suspects"), all: t("All rows") };
  // 0.7996 -> "79.9", never "80": a share under the --accept-above threshold never reads as it
  const percent = (share) => String(Math.floor(1000 * share + 1e-9) / 10);
  const state = { info: null, queue: "to_label", rows: [], index: 0, row: null, busy: false };

  // --- talking to the server -------------------------------------------------------------

  async function api(path, body) {
    const init = body === undefined ? {} : {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    };
    const response = await fetch(path, init);
    const payload = await response.json().catch(() => ({}));
    if (!response.ok) {
      const detail = Array.isArray(payload.detail)
        ? payload.detail.map((d) => d.msg).join("; ")
        : payload.detail;
      throw new Error(detail || `${response.status} ${response.statusText}`);
    }
    return payload;
  }

  const annotator = () => $("annotator").value.trim();
  const query = (params) => new URLSearchParams(params).toString();

  function say(text) {
    $("message").textContent = text || "";
  }

  async function guarded(action) {
    if (state.busy) return;
    state.busy = true;
    document.body.dataset.busy = "true";
    try {
      await action();
    } catch (error) {
      say(error.message);
    } finally {
      state.busy = false;
      document.body.dataset.busy = "false";
    }
  }

  function needName() {
    if (annotator()) return false;
    say(t("Enter your name in the Annotator field before your first decision."));
    $("annotator").classList.add("needed");
    $("annotator").focus();
    return true;
  }

  // --- queue and current row --------------------------------------------------------------

  async function loadQueue(name) {
    state.queue = name;
    for (const button of document.querySelectorAll("#queues button")) {
      button.setAttribute("aria-pressed", String(button.dataset.queue === name));
    }
    const result = await api(`/api/queue?${query({ name, annotator: annotator() })}`);
    state.rows = result.rows;
    state.index = 0;
    await show();
  }

  async function show() {
    const done = state.index >= state.rows.length;
    $("empty").hidden = !done;
    $("current").hidden = done;
    const where = t("{position} of {count}", {
      position: Math.min(state.index + 1, state.rows.length),
      count: state.rows.length,
    });
    $("position").textContent = `${QUEUE_NAMES[state.queue]}: ${where}`;
    if (done) {
      state.row = null;
      $("card").dataset.row = "";
      return;
    }
    const row = await api(`/api/rows/${state.rows[state.index]}?${query({ annotator: annotator() })}`);
    state.row = row;
    $("position").textContent += " " + t("(row {row})", { row: row.row });
    render(row);
    $("card").dataset.row = String(row.row); // after rendering: tests wait on it
  }

  function render(row) {
    const item = $("item");
    item.replaceChildren();
    if (row.kind === "image") {
      const image = document.createElement("img");
      image.src = row.image_url;
      image.alt = row.image_name;
      image.onerror = () => say(t("Cannot show image {name}", { name: row.image_name }));
      item.append(image);
    } else {
      item.textContent = row.text || t("(empty text)");
    }
    $("label-now").textContent = row.label || t("none");
    $("yours").textContent = row.yours ? t("(your decision: {label})", { label: row.yours }) : "";

    const suspect = row.suspect;
    $("suspect").hidden = !suspect;
    if (suspect) {
      $("given").textContent = suspect.label || t("none");
      $("suggested").textContent = suspect.suggested || t("(no suggestion)");
      $("confidence").textContent =
        suspect.confidence == null
          ? ""
          : t("(confidence {share}%)", { share: percent(suspect.confidence) });
      $("suspect-message").textContent = suspect.message || "";
      $("accept").disabled = !suspect.suggested;
      // under --accept-above, Enter leaves the label alone: a click or the label's key takes it
      const byEnter = Boolean(suspect.enter_accepts);
      $("accept").classList.toggle("primary", byEnter);
      $("accept-key").hidden = !byEnter;
      $("accept-hint").hidden = byEnter || !suspect.suggested;
      $("accept-hint").textContent = byEnter ? "" : acceptHint(suspect);
    }

    const labels = $("labels");
    labels.replaceChildren();
    state.info.labels.forEach((label, i) => {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.label = label;
      if (i < 9) {
        const key = document.createElement("kbd");
        key.textContent = String(i + 1);
        button.append(key, " ");
      }
      button.append(label);
      button.classList.toggle("current", label === row.label);
      button.classList.toggle("suggested", Boolean(suspect && label === suspect.suggested));
      button.addEventListener("click", () => decide(label));
      labels.append(button);
    });

    const history = $("history");
    history.replaceChildren();
    for (const d of row.decisions) {
      const entry = document.createElement("li");
      entry.textContent = `${d.annotator}: ${d.label} (${d.kind}, ${d.at})`;
      history.append(entry);
    }
  }

  // Why Enter does not take this suggestion (the server decides: row.suspect.enter_accepts).
  function acceptHint(suspect) {
    if (suspect.confidence == null) {
      return t(
        "Confidence unknown: Enter does not accept it; choose the label yourself (click it " +
          "or press its number key).",
      );
    }
    return t(
      "{share}%, under {threshold}%: Enter does not accept it; choose the label yourself " +
        "(click it or press its number key).",
      { share: percent(suspect.confidence), threshold: percent(state.info.accept_above) },
    );
  }

  function move(step) {
    return guarded(async () => {
      say("");
      state.index = Math.max(0, Math.min(state.rows.length, state.index + step));
      await show();
    });
  }

  // --- decisions ---------------------------------------------------------------------------

  function decide(label) {
    if (!state.row || needName()) return;
    return guarded(async () => {
      const row = state.row.row;
      const result = await api("/api/decisions", { row, label, annotator: annotator() });
      say(t("Row {row}: {label} ({kind})", { row, label, kind: result.decision.kind }));
      renderProgress(result.progress);
      state.index += 1;
      await show();
      await refreshAgreement();
    });
  }

  function undo() {
    if (needName()) return;
    return guarded(async () => {
      const result = await api("/api/undo", { annotator: annotator() });
      renderProgress(result.progress);
      if (!result.decision) {
        say(t("Nothing to undo."));
        return;
      }
      const row = result.decision.row;
      let at = state.rows.indexOf(row);
      if (at < 0) {
        state.rows.splice(state.index, 0, row);
        at = state.index;
      }
      state.index = at;
      say(t("Undid {label} on row {row}.", { label: result.decision.label, row }));
      await show();
      await refreshAgreement();
    });
  }

  function exportLabels() {
    return guarded(async () => {
      const result = await api("/api/export", { format: $("format").value });
      $("export-result").textContent = t("Wrote {count} rows to {path}", {
        count: result.rows,
        path: result.path,
      });
    });
  }

  // --- side panels -------------------------------------------------------------------------

  function renderProgress(p) {
    const lines = [
      [t("To label"), t("{done} of {total} labelled (you: {yours})", p.to_label)],
      [t("Suspects"), t("{done} of {total} reviewed (you: {yours})", p.suspects)],
      [t("Decisions"), t("{decisions} by {annotators} annotator(s)", p)],
    ];
    const body = $("progress").tBodies[0];
    body.replaceChildren();
    for (const [name, text] of lines) {
      const tr = body.insertRow();
      tr.insertCell().textContent = name;
      tr.insertCell().textContent = text;
    }
    for (const button of document.querySelectorAll("#queues button")) {
      const counts = p[button.dataset.queue];
      const left = button.dataset.queue === "all" ? counts.total : counts.total - counts.yours;
      button.querySelector(".count").textContent = `(${left})`;
    }
  }

  async function refreshAgreement() {
    const a = await api("/api/agreement");
    const panel = $("agreement");
    panel.replaceChildren();
    const note = document.createElement("p");
    note.className = "muted";
    const number = (x) => (x == null ? t("n/a") : x.toFixed(3));
    if (a.rows === 0) {
      note.textContent = t("No row is labelled by two annotators yet.");
      panel.append(note);
      return;
    }
    const table = document.createElement("table");
    const head = table.createTHead().insertRow();
    for (const title of [t("pair"), t("rows"), t("agree"), "kappa"]) {
      const th = document.createElement("th");
      th.textContent = title;
      head.append(th);
    }
    const body = table.createTBody();
    for (const pair of a.pairs) {
      const tr = body.insertRow();
      tr.insertCell().textContent = `${pair.first} / ${pair.second}`;
      tr.insertCell().textContent = String(pair.rows);
      tr.insertCell().textContent = number(pair.observed);
      tr.insertCell().textContent = number(pair.kappa);
    }
    note.textContent = t(
      "Krippendorff's alpha (nominal): {alpha} over {rows} rows, {annotators} annotators. " +
        "Cohen's kappa per pair.",
      { alpha: number(a.alpha), rows: a.rows, annotators: a.annotators.length },
    );
    panel.append(table, note);
  }

  async function refreshProgress() {
    const progress = await api(`/api/progress?${query({ annotator: annotator() })}`);
    renderProgress(progress);
    return progress;
  }

  // --- keys and start ----------------------------------------------------------------------

  function onKey(event) {
    const target = event.target;
    if (target.matches("input, select, textarea")) {
      if (event.key === "Enter" && target.id === "annotator") target.blur();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || !state.info) return;
    const suspect = state.row && state.row.suspect;
    const key = event.key;
    if (/^[1-9]$/.test(key)) {
      const label = state.info.labels[Number(key) - 1];
      if (label !== undefined) decide(label);
    } else if (key === "Enter") {
      if (suspect && suspect.suggested) {
        if (suspect.enter_accepts) {
          decide(suspect.suggested);
        } else {
          const threshold = percent(state.info.accept_above);
          say(t("Label unchanged: Enter accepts only suggestions of at least {threshold}%.", {
            threshold,
          }));
        }
      }
    } else if (key === "k") {
      if (suspect && suspect.label) decide(suspect.label);
    } else if (key === "s" || key === "ArrowRight") {
      move(1);
    } else if (key === "ArrowLeft") {
      move(-1);
    } else if (key === "u") {
      undo();
    } else {
      return;
    }
    event.preventDefault(); // also stops Enter from clicking a focused button
  }

  async function start() {
    const name = $("annotator");
    name.value = localStorage.getItem(NAME_KEY) || "";
    name.addEventListener("input", () => {
      localStorage.setItem(NAME_KEY, annotator());
      name.classList.remove("needed");
    });
    name.addEventListener("change", () =>
      guarded(async () => {
        await refreshProgress();
        await loadQueue(state.queue);
      }),
    );
    for (const button of document.querySelectorAll("#queues button")) {
      button.addEventListener("click", () => guarded(() => loadQueue(button.dataset.queue)));
    }
    $("prev").addEventListener("click", () => move(-1));
    $("skip").addEventListener("click", () => move(1));
    $("undo").addEventListener("click", undo);
    $("accept").addEventListener("click", () => decide(state.row.suspect.suggested));
    $("keep").addEventListener("click", () => decide(state.row.suspect.label));
    $("export").addEventListener("click", exportLabels);
    document.addEventListener("keydown", onKey);

    await guarded(async () => {
      state.info = await api("/api/info");
      $("source").textContent = t("{data} ({rows} rows)", state.info);
      $("accept-rule").textContent = t(
        "Enter accepts a suggestion only at a confidence of at least {threshold}%.",
        { threshold: percent(state.info.accept_above) },
      );
      $("format").value = state.info.export_format;
      const p = await refreshProgress();
      const first = ["to_label", "suspects"].find((q) => p[q].total - p[q].yours > 0) || "all";
      await loadQueue(first);
      await refreshAgreement();
    });
    document.body.dataset.ready = "true";
  }

  start();
})();
