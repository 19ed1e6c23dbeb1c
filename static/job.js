// Live progress of one job: polls its status every two seconds while it is queued or
// running, and reloads the page when it ends (the page then shows what it did, and no
// cancel button). A finished job's log is read once.
(function () {
  "use strict";
  const box = document.getElementById("job");
  if (!box) return;
  const id = box.dataset.id;
  const live = box.dataset.live === "true";
  let after = 0;
  const set = (key, value) => {
    const el = document.getElementById(key);
    if (el) el.textContent = value === undefined || value === null ? "" : String(value);
  };
  async function poll() {
    let data;
    try {
      const response = await fetch(`/engineer/jobs/${id}/status?after=${after}`, { headers: { Accept: "application/json" } });
      if (!response.ok) return setTimeout(poll, 5000);
      data = await response.json();
    } catch (e) {
      return setTimeout(poll, 5000);
    }
    const job = data.job, p = job.progress || {};
    const running = job.status === "queued" || job.status === "running";
    if (live && !running) return window.location.reload();
    set("job-status", data.words.status);
    set("job-attempts", `${job.attempts}/${job.max_attempts}`);
    set("job-stage", data.words.stage);
    set("job-epoch", p.epoch);
    set("job-loss", typeof p.loss === "number" ? p.loss.toFixed(4) : "");
    if (p.chunks) {
      const c = p.chunks, all = c.queued + c.running + c.succeeded + c.failed;
      set("job-chunks", `${c.succeeded} / ${all} · ${c.workers}`);
    }
    set("job-eta", typeof p.eta_seconds === "number" ? `${Math.round(p.eta_seconds)} s` : "");
    const done = p.step ?? p.done, total = p.total_steps ?? p.total;
    const meter = document.getElementById("job-meter");
    if (total && meter) {
      meter.value = done / total;
      set("job-steps", `${done} / ${total}`);
    }
    const log = document.getElementById("job-log");
    for (const line of data.logs) {
      log.textContent += `${line.at.slice(11, 19)} ${line.line}\n`;
      after = line.id;
    }
    if (running) setTimeout(poll, 2000);
  }
  poll();
})();
