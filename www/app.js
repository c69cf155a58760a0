// Ask the server for this page again with HEAD and show what it answered.
// Plain JavaScript, no libraries; does nothing if the elements are missing.
(function () {
  'use strict';

  var WANTED = ['Server', 'Date', 'Content-Type', 'Content-Length', 'Last-Modified'];

  function $(id) { return document.getElementById(id); }

  function show(id, text) {
    var el = $(id);
    if (el) { el.textContent = text; }
  }

  function showHeaders() {
    if (!$('headers')) { return; }
    if (typeof fetch !== 'function') {
      show('headers', 'This browser has no fetch(); nothing to show.');
      return;
    }
    var started = (window.performance && performance.now) ? performance.now() : Date.now();
    fetch(location.href, { method: 'HEAD', cache: 'no-store' })
      .then(function (res) {
        var ended = (window.performance && performance.now) ? performance.now() : Date.now();
        var lines = ['HTTP ' + res.status + (res.statusText ? ' ' + res.statusText : '')];
        WANTED.forEach(function (name) {
          var value = res.headers.get(name);
          lines.push(name + ': ' + (value === null ? '(not sent)' : value));
        });
        lines.push('');
        lines.push('HEAD round trip: ' + (ended - started).toFixed(1) + ' ms');
        show('headers', lines.join('\n'));
      })
      .catch(function (err) {
        show('headers', 'HEAD ' + location.pathname + ' failed: ' + err);
      });
  }

  function showLoadTime() {
    if (!$('timing')) { return; }
    var ms = null;
    var perf = window.performance;
    if (perf && perf.getEntriesByType) {
      var nav = perf.getEntriesByType('navigation')[0];
      if (nav && nav.loadEventStart > 0) { ms = nav.loadEventStart - nav.startTime; }
    }
    if (ms === null && perf && perf.timing && perf.timing.loadEventStart > 0) {
      ms = perf.timing.loadEventStart - perf.timing.navigationStart;
    }
    if (ms !== null) {
      show('timing', 'This page (HTML, CSS, script, images) loaded in ' + ms.toFixed(1) + ' ms.');
    }
  }

  function start() {
    showHeaders();
    if (document.readyState === 'complete') {
      showLoadTime();
    } else {
      // Run after the load event has finished so loadEventStart is set.
      window.addEventListener('load', function () { setTimeout(showLoadTime, 0); });
    }
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
