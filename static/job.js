// Live progress of one job: polls its status every two seconds until it ends.
(function () {
  const box = document.getElementById("job");
  if (!box) return;
  const id = box.dataset.id;
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
    set("job-status", job.status);
    set("job-attempts", `${job.attempts}/${job.max_attempts}`);
    set("job-stage", p.stage);
    set("job-epoch", p.epoch);
    set("job-loss", typeof p.loss === "number" ? p.loss.toFixed(4) : p.loss);
    if (p.chunks) {
      const c = p.chunks, all = c.queued + c.running + c.succeeded + c.failed;
      set("job-chunks", `${c.succeeded} / ${all} · ${c.workers}`);
    }
    set("job-eta", p.eta_seconds === undefined ? "" : `${p.eta_seconds} s`);
    const done = p.step ?? p.done, total = p.total_steps ?? p.total;
    if (total) {
      document.getElementById("job-meter").value = done / total;
      set("job-steps", `${done} / ${total}`);
    }
    if (job.result) set("job-result", JSON.stringify(job.result, null, 2));
    const log = document.getElementById("job-log");
    for (const line of data.logs) {
      log.textContent += `${line.at.slice(11, 19)} ${line.line}\n`;
      after = line.id;
    }
    if (job.status === "queued" || job.status === "running") setTimeout(poll, 2000);
  }
  poll();
})();
