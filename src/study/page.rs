//! The live picture of the loop served at `--stats PATH`: one self-contained HTML page (no
//! external scripts, fonts or CDNs) that fetches `PATH/json` every second and draws, as inline
//! SVG, loop utilisation and wakeups per second over the last minute, what a request cost over
//! that minute (system calls, wakeups and bytes per request, the page's own fetches left out),
//! the events-per-wakeup histogram of the last minute on a log scale, and the open
//! connections by state; a legend says what each is.
//!
//! Where this sits in the loop: outside it. The page is a constant; the browser does the
//! drawing, so serving it costs the loop one small answer per second.

/// The page, with `PATH` filled in. `config.rs` accepts only paths made of letters, digits
/// and `/._~-`, so the path needs no escaping in HTML or in the script.
pub fn render(base: &str) -> String {
    PAGE.replace("__STATS_PATH__", base)
}

/// The page's template; `__STATS_PATH__` is replaced by the `--stats` path.
const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>epollo: the loop, live</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 1.5rem auto; max-width: 62rem; padding: 0 1rem; color: #1d2330; background: #fbfbfd; }
  h1 { font-size: 1.4rem; margin: 0 0 .2rem; }
  p.lead { margin: 0 0 1rem; color: #555; }
  .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(28rem, 1fr)); gap: 1rem; }
  section { background: #fff; border: 1px solid #dde1ea; border-radius: 8px; padding: .8rem 1rem; }
  h2 { font-size: 1rem; margin: 0 0 .4rem; }
  svg { width: 100%; height: auto; display: block; }
  .big { font-size: 1.6rem; font-weight: 600; }
  .muted { color: #667; font-size: .85rem; }
  table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
  td { padding: .1rem .4rem; border-bottom: 1px solid #eef0f5; }
  td:last-child { text-align: right; }
</style>
</head>
<body>
<h1>epollo: the readiness loop, live</h1>
<p class="lead">Updated every second from <a href="__STATS_PATH__/json"><code>__STATS_PATH__/json</code></a>
(Prometheus: <a href="__STATS_PATH__/metrics"><code>__STATS_PATH__/metrics</code></a>). <span id="status" class="muted"></span></p>
<div class="grid">
  <section>
    <h2>Loop utilisation, last minute</h2>
    <div><span class="big" id="util">–</span> <span class="muted">of the time handling events, the rest blocked in <code>epoll_wait</code></span></div>
    <svg id="util-chart" viewBox="0 0 480 140" role="img" aria-label="loop utilisation over the last minute"></svg>
  </section>
  <section>
    <h2>Wakeups per second, last minute</h2>
    <div><span class="big" id="wakeups">–</span> <span class="muted">wakeups/s, <span id="requests">–</span> requests/s</span></div>
    <svg id="wakeup-chart" viewBox="0 0 480 140" role="img" aria-label="wakeups per second over the last minute"></svg>
  </section>
  <section>
    <h2>What a request cost, last minute</h2>
    <table id="ratios">
      <tr><td>system calls per request</td><td id="syscalls-per-request">–</td></tr>
      <tr><td>wakeups per request</td><td id="wakeups-per-request">–</td></tr>
      <tr><td>bytes sent per request</td><td id="bytes-per-request">–</td></tr>
      <tr><td>requests (this page's own left out)</td><td id="requests-minute">–</td></tr>
    </table>
    <div class="muted">System calls: <code>epoll_wait</code>, <code>accept4</code>, <code>recv</code>,
    <code>send</code>/<code>sendfile</code> (with their <code>EAGAIN</code>s) and <code>epoll_ctl</code>.
    The page's own fetch, once a second, is in these counts; at a few requests a second it
    dominates them.</div>
  </section>
  <section>
    <h2>Events per wakeup, last minute</h2>
    <div class="muted">How many ready descriptors each <code>epoll_wait</code> returned; bar heights
    on a log scale (1, 10, 100, …), so rare large batches show beside common small ones.</div>
    <svg id="histogram" viewBox="0 0 480 160" role="img" aria-label="histogram of events per wakeup"></svg>
  </section>
  <section>
    <h2>Open connections by state, now</h2>
    <div class="muted">A snapshot taken while this page's own request is answered: a request
    takes microseconds, so under load most connections are caught idle between requests.</div>
    <svg id="states" viewBox="0 0 480 160" role="img" aria-label="open connections by state"></svg>
  </section>
  <section>
    <h2>Legend</h2>
    <dl class="muted" id="legend">
      <dt>wakeup</dt><dd>one return of <code>epoll_wait</code>, with events or at a timeout.</dd>
      <dt>utilisation</dt><dd>the share of the time spent handling events rather than blocked in
      <code>epoll_wait</code>.</dd>
      <dt>idle, reading, writing, lingering, streaming</dt><dd>a connection waiting for a request;
      receiving one; sending answers; draining a client after a closing answer;
      <code>--live</code> event streams.</dd>
      <dt>keep_alive_reuses</dt><dd>requests answered on a connection that had answered one before.</dd>
      <dt>pipelined</dt><dd>requests answered in the same batch as an earlier one.</dd>
      <dt>writes_short</dt><dd>writes that took less than offered: the socket was full.</dd>
      <dt>stats_requests</dt><dd>requests for these pages (this page asks once a second).</dd>
    </dl>
  </section>
  <section>
    <h2>Counters</h2>
    <table id="counters"></table>
  </section>
</div>
<script>
"use strict";
const base = "__STATS_PATH__";
const NS = "http://www.w3.org/2000/svg";
function el(name, attrs, text) {
  const node = document.createElementNS(NS, name);
  for (const key in attrs) node.setAttribute(key, attrs[key]);
  if (text !== undefined) node.textContent = text;
  return node;
}
function line(svg, values, max, color, label) {
  svg.replaceChildren();
  const w = 480, h = 120, left = 40;
  svg.appendChild(el("line", {x1: left, y1: h, x2: w, y2: h, stroke: "#aab"}));
  svg.appendChild(el("text", {x: 2, y: 12, "font-size": 11, fill: "#667"}, label(max)));
  svg.appendChild(el("text", {x: 2, y: h, "font-size": 11, fill: "#667"}, label(0)));
  svg.appendChild(el("text", {x: left, y: h + 16, "font-size": 11, fill: "#667"}, "60 s ago"));
  svg.appendChild(el("text", {x: w - 30, y: h + 16, "font-size": 11, fill: "#667"}, "now"));
  const step = (w - left) / 59;
  const offset = 60 - values.length;
  const points = values.map((v, i) => `${(left + (offset + i) * step).toFixed(1)},${(h - (max ? v / max : 0) * (h - 8)).toFixed(1)}`);
  if (points.length) svg.appendChild(el("polyline", {points: points.join(" "), fill: "none", stroke: color, "stroke-width": 2}));
}
function bars(svg, labels, values, color, log) {
  svg.replaceChildren();
  const scale = v => log ? Math.log10(1 + v) : v;
  const w = 480, h = 130, max = Math.max(scale(1), ...values.map(scale)), width = w / labels.length;
  labels.forEach((label, i) => {
    const height = scale(values[i]) / max * (h - 20);
    svg.appendChild(el("rect", {x: i * width + 4, y: h - height, width: width - 8, height: Math.max(height, 0.5), fill: color, rx: 2}));
    svg.appendChild(el("text", {x: i * width + width / 2, y: h + 14, "font-size": 11, "text-anchor": "middle", fill: "#445"}, label));
    svg.appendChild(el("text", {x: i * width + width / 2, y: h - height - 4, "font-size": 10, "text-anchor": "middle", fill: "#667"}, String(values[i])));
  });
}
async function refresh() {
  try {
    const response = await fetch(base + "/json", {cache: "no-store"});
    const stats = await response.json();
    const history = stats.history;
    const last = history[history.length - 1] || {wakeups: 0, requests: 0, utilisation: stats.loop.utilisation};
    document.getElementById("util").textContent = (last.utilisation * 100).toFixed(1) + "%";
    document.getElementById("wakeups").textContent = last.wakeups.toFixed(0);
    document.getElementById("requests").textContent = last.requests.toFixed(0);
    line(document.getElementById("util-chart"), history.map(s => s.utilisation * 100), 100, "#d0453b", v => v + "%");
    const wmax = Math.max(10, ...history.map(s => s.wakeups));
    line(document.getElementById("wakeup-chart"), history.map(s => s.wakeups), wmax, "#2f6fd0", v => v.toFixed(0));
    const minute = stats.events_per_wakeup.map((_, i) => history.reduce((sum, s) => sum + s.events[i], 0));
    bars(document.getElementById("histogram"), stats.events_per_wakeup.map(b => b.events), minute, "#4a9d6e", true);
    const sum = key => history.reduce((total, s) => total + s[key], 0);
    const requests = sum("requests"), own = sum("stats_requests"), served = requests - own;
    const per = (key, digits) => requests > 0 ? (sum(key) / requests).toFixed(digits) : "–";
    document.getElementById("syscalls-per-request").textContent = per("syscalls", 2);
    document.getElementById("wakeups-per-request").textContent = per("wakeups", 2);
    document.getElementById("bytes-per-request").textContent = per("bytes", 0);
    document.getElementById("requests-minute").textContent = served.toFixed(0);
    const states = Object.keys(stats.connections);
    bars(document.getElementById("states"), states, states.map(s => stats.connections[s]), "#8a5cc7", false);
    const table = document.getElementById("counters");
    table.replaceChildren();
    for (const name in stats.counters) {
      const row = table.insertRow();
      row.insertCell().textContent = name;
      row.insertCell().textContent = stats.counters[name];
    }
    document.getElementById("status").textContent = `workers: ${stats.workers}`;
  } catch (error) {
    document.getElementById("status").textContent = "server unreachable: " + error;
  }
}
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
"##;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_its_json_and_loads_nothing_from_elsewhere() {
        let page = render("/_stats");
        assert!(page.contains("const base = \"/_stats\";"));
        assert!(page.contains("href=\"/_stats/metrics\""));
        assert!(!page.contains("__STATS_PATH__"));
        assert!(!page.contains("http://") || !page.contains("src=\"http"));
        assert!(!page.contains("<script src"));
        // The legend explains the states and the counters a reader may not know.
        for term in [
            "wakeup",
            "utilisation",
            "lingering",
            "keep_alive_reuses",
            "writes_short",
        ] {
            assert!(
                page.contains(&format!("<dt>{term}")) || page.contains(term),
                "{term}"
            );
        }
        assert!(page.contains("id=\"legend\"") && page.contains("id=\"syscalls-per-request\""));
    }
}
