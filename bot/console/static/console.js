/*
 * Operator console behaviour. Plain ES2017, no build step, loaded by
 *
 *   <script src="/admin/static/vendor/chart.umd.min.js"></script>
 *   <script src="/admin/static/console.js"></script>
 *
 * (both may carry `defer`). The pages are served with CSP script-src 'self',
 * so everything lives here; the templates only carry data-* attributes:
 *
 *   <div class="chart"><canvas data-chart="ID"></canvas></div>
 *   <script type="application/json" id="ID">{"kind": "bar", ...}</script>
 *       One chart per canvas. JSON: {kind: "bar"|"line", stacked: bool,
 *       labels: [str], datasets: [{label: str, data: [number|null],
 *       color: "#rrggbb"}], yTitle?: str}. When drawn, the canvas gets
 *       data-rendered="1". When Chart.js is missing or the JSON is unusable
 *       the canvas is left alone and a <p class="chart-note"> is added to the
 *       .chart div; its text is the canvas's data-chart-note, or
 *       "chart unavailable: see the table".
 *   <form data-confirm="text">   asks confirm(text) on submit.
 *   <button data-copy="text">    copies text to the clipboard; the button gets
 *                                the class "copied" (or "copy-failed") briefly.
 */
(function () {
  'use strict';

  var DEFAULT_NOTE = 'chart unavailable: see the table';
  var FONT = '-apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, ' +
    '"Helvetica Neue", Arial, "PingFang SC", "Hiragino Sans GB", ' +
    '"Microsoft YaHei", "Noto Sans CJK SC", "Source Han Sans SC", sans-serif';
  var PALETTE = ['#2e7d32', '#1565c0', '#ef6c00', '#6a1b9a', '#c62828', '#00838f', '#757575'];

  function isNumberOrNull(v) {
    return v === null || (typeof v === 'number' && isFinite(v));
  }

  /* Returns the parsed spec, or null when it does not follow the contract. */
  function readSpec(id) {
    var island = id ? document.getElementById(id) : null;
    if (!island) return null;
    var spec;
    try {
      spec = JSON.parse(island.textContent);
    } catch (e) {
      return null;
    }
    if (!spec || typeof spec !== 'object') return null;
    if (spec.kind !== 'bar' && spec.kind !== 'line') return null;
    if (!Array.isArray(spec.labels) || !Array.isArray(spec.datasets)) return null;
    for (var i = 0; i < spec.datasets.length; i++) {
      var ds = spec.datasets[i];
      if (!ds || typeof ds !== 'object' || !Array.isArray(ds.data)) return null;
      if (!ds.data.every(isNumberOrNull)) return null;
    }
    return spec;
  }

  function datasetFor(spec, ds, i) {
    var color = typeof ds.color === 'string' && ds.color ? ds.color : PALETTE[i % PALETTE.length];
    var out = {
      label: ds.label == null ? '' : String(ds.label),
      data: ds.data,
      backgroundColor: color,
      borderColor: color
    };
    if (spec.kind === 'line') {
      out.fill = false;
      out.borderWidth = 2;
      out.pointRadius = 2;
      out.pointHoverRadius = 4;
      out.tension = 0;
    } else {
      out.borderWidth = 0;
      out.maxBarThickness = 48;
    }
    return out;
  }

  function configFor(spec) {
    var stacked = spec.stacked === true;
    var yTitle = typeof spec.yTitle === 'string' ? spec.yTitle : '';
    return {
      type: spec.kind,
      data: {
        labels: spec.labels.map(function (l) { return l == null ? '' : String(l); }),
        datasets: spec.datasets.map(function (ds, i) { return datasetFor(spec, ds, i); })
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        layout: { padding: { top: 4, right: 6 } },
        interaction: { mode: 'index', intersect: false },
        plugins: {
          legend: { position: 'bottom', labels: { boxWidth: 12, boxHeight: 12 } },
          tooltip: { enabled: true }
        },
        scales: {
          x: {
            stacked: stacked,
            grid: { display: false },
            ticks: { autoSkip: true, maxRotation: 0 }
          },
          y: {
            stacked: stacked,
            beginAtZero: true,
            ticks: { precision: 0 },
            title: { display: yTitle !== '', text: yTitle }
          }
        }
      }
    };
  }

  function addNote(canvas) {
    var box = canvas.closest('.chart') || canvas.parentElement;
    if (!box || box.querySelector('.chart-note')) return;
    var note = document.createElement('p');
    note.className = 'chart-note';
    note.textContent = canvas.getAttribute('data-chart-note') || DEFAULT_NOTE;
    box.appendChild(note);
  }

  function drawChart(canvas) {
    if (canvas.dataset.rendered === '1') return;
    var Chart = window.Chart;
    var spec = readSpec(canvas.getAttribute('data-chart'));
    if (typeof Chart !== 'function' || !spec) {
      addNote(canvas);
      return;
    }
    try {
      new Chart(canvas, configFor(spec));
      canvas.dataset.rendered = '1';
    } catch (e) {
      try {
        var half = Chart.getChart && Chart.getChart(canvas);
        if (half) half.destroy();
      } catch (ignored) { /* nothing more to do */ }
      addNote(canvas);
      if (window.console && console.warn) console.warn('chart', canvas.getAttribute('data-chart'), e);
    }
  }

  function drawCharts() {
    var Chart = window.Chart;
    if (typeof Chart === 'function' && Chart.defaults) {
      try {
        Chart.defaults.font.family = FONT;
        Chart.defaults.font.size = 12;
        Chart.defaults.color = '#4b5563';
        Chart.defaults.borderColor = '#e5e7eb';
      } catch (e) { /* defaults are cosmetic */ }
    }
    var canvases = document.querySelectorAll('canvas[data-chart]');
    for (var i = 0; i < canvases.length; i++) {
      try {
        drawChart(canvases[i]);
      } catch (e) {
        try { addNote(canvases[i]); } catch (ignored) { /* never throw */ }
      }
    }
  }

  /* <form data-confirm="text"> */
  function onSubmit(event) {
    var form = event.target;
    if (!form || !form.hasAttribute || !form.hasAttribute('data-confirm')) return;
    var text = form.getAttribute('data-confirm') || 'Are you sure?';
    if (!window.confirm(text)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }

  /* <button data-copy="text"> */
  function copyWithTextarea(text) {
    var area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('readonly', '');
    area.style.position = 'fixed';
    area.style.top = '-1000px';
    area.style.opacity = '0';
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try {
      ok = document.execCommand('copy');
    } catch (e) {
      ok = false;
    }
    document.body.removeChild(area);
    return ok;
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).then(
        function () { return true; },
        function () { return copyWithTextarea(text); }
      );
    }
    return Promise.resolve(copyWithTextarea(text));
  }

  function flag(button, cls) {
    button.classList.remove('copied', 'copy-failed');
    button.classList.add(cls);
    clearTimeout(button._copyTimer);
    button._copyTimer = setTimeout(function () { button.classList.remove(cls); }, 1500);
  }

  function onClick(event) {
    var target = event.target;
    var button = target && target.closest ? target.closest('button[data-copy]') : null;
    if (!button) return;
    event.preventDefault(); /* a copy button inside a form must not submit it */
    copyText(button.getAttribute('data-copy') || '').then(
      function (ok) { flag(button, ok ? 'copied' : 'copy-failed'); },
      function () { flag(button, 'copy-failed'); }
    );
  }

  function start() {
    drawCharts();
  }

  document.addEventListener('submit', onSubmit, true);
  document.addEventListener('click', onClick);
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
