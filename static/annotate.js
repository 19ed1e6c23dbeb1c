// Keyboard-only labelling for the annotation page. The form works without this
// script; the script only adds shortcuts and a check before submitting.
(function () {
  "use strict";
  const form = document.getElementById("label-form");
  if (!form) return;
  const rows = Array.from(form.querySelectorAll(".keyword"));
  const noKeyword = document.getElementById("no-keyword");
  const messages = document.getElementById("messages");
  const byKey = new Map(rows.filter((r) => r.dataset.key).map((r) => [r.dataset.key, r]));
  let focused = rows.find((r) => checkbox(r).checked) || null;
  let submitting = false;

  function checkbox(row) { return row.querySelector("input[type=checkbox]"); }
  function select(row) { return row.querySelector("select"); }
  function selected() { return rows.filter((r) => checkbox(r).checked); }

  // A row as the model suggested it (accepted) and one changed by hand look different.
  function suggestedLevel(row) { return row.dataset.suggestedLevel; }
  function paint() {
    rows.forEach((r) => {
      const on = checkbox(r).checked;
      const level = suggestedLevel(r);
      const asSuggested = level !== undefined ? on && select(r).value === level : !on;
      r.classList.toggle("on", on);
      r.classList.toggle("focus", r === focused);
      r.classList.toggle("accepted", level !== undefined && asSuggested);
      r.classList.toggle("manual", !asSuggested);
    });
  }

  function acceptAll() {
    if (!rows.some((r) => suggestedLevel(r) !== undefined)) return;
    rows.forEach((r) => {
      const level = suggestedLevel(r);
      checkbox(r).checked = level !== undefined;
      if (level !== undefined) select(r).value = level;
    });
    noKeyword.checked = false;
    focused = selected()[0] || null;
    paint();
  }

  function toggle(row) {
    const box = checkbox(row);
    box.checked = !box.checked;
    if (box.checked) {
      noKeyword.checked = false;
      focused = row;
    } else if (focused === row) {
      focused = selected()[0] || null;
    }
    paint();
  }

  function shiftLevel(step) {
    if (!focused || !checkbox(focused).checked) return;
    const s = select(focused);
    s.selectedIndex = Math.min(s.options.length - 1, Math.max(0, s.selectedIndex + step));
    paint();
  }

  function moveFocus(step) {
    const on = selected();
    if (on.length === 0) return;
    const i = on.indexOf(focused);
    focused = on[(i + step + on.length) % on.length];
    paint();
  }

  function submit() {
    if (document.getElementById("submit-button").disabled) return;
    const any = selected().length > 0;
    if (!any && !noKeyword.checked) { alert(messages.dataset.choose); return; }
    if (any && noKeyword.checked) { alert(messages.dataset.both); return; }
    if (submitting) return;
    submitting = true;
    HTMLFormElement.prototype.submit.call(form);
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); submit(); });
  rows.forEach((r) => {
    checkbox(r).addEventListener("change", () => {
      if (checkbox(r).checked) { focused = r; noKeyword.checked = false; }
      paint();
    });
    select(r).addEventListener("change", () => {
      if (!checkbox(r).checked) { checkbox(r).checked = true; noKeyword.checked = false; }
      focused = r;
      paint();
    });
  });
  noKeyword.addEventListener("change", () => {
    if (noKeyword.checked) { rows.forEach((r) => { checkbox(r).checked = false; }); focused = null; paint(); }
  });

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.isComposing) return;
    const k = e.key;
    let handled = true;
    if (e.shiftKey && k === "N") {
      noKeyword.checked = !noKeyword.checked;
      noKeyword.dispatchEvent(new Event("change"));
    } else if (e.shiftKey && k === "S") {
      const skip = document.getElementById("skip-form");
      if (skip) HTMLFormElement.prototype.submit.call(skip);
    } else if (e.shiftKey && k === "B") {
      document.getElementById("back").click();
    } else if (e.shiftKey && k === "A") {
      acceptAll();
    } else if (e.shiftKey && k === "G") {
      if (focused) { const d = focused.querySelector("details"); d.open = !d.open; }
    } else if (k === "Enter") {
      submit();
    } else if (k === "ArrowLeft" || k === "-") {
      shiftLevel(-1);
    } else if (k === "ArrowRight" || k === "+" || k === "=") {
      shiftLevel(1);
    } else if (k === "ArrowUp") {
      moveFocus(-1);
    } else if (k === "ArrowDown") {
      moveFocus(1);
    } else if (!e.shiftKey && byKey.has(k.toLowerCase())) {
      toggle(byKey.get(k.toLowerCase()));
    } else {
      handled = false;
    }
    if (handled) e.preventDefault();
  });
  paint();
})();
