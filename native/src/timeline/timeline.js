// Uncaught errors are counted on <body data-errors>, for a headless check of the page.
window.onerror = function () {
  var b = document.body;
  if (b) b.setAttribute('data-errors', (+b.getAttribute('data-errors') || 0) + 1);
};
(function () {
  'use strict';
  // Report strings reach the page only through textContent and setAttribute, never as markup.
  var D = JSON.parse(document.getElementById('od-data').textContent);
  var SVG = 'http://www.w3.org/2000/svg';
  var UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  var T = D.t || [];
  var N = T.length;
  var breaks = {};
  (D.breaks || []).forEach(function (i) { breaks[i] = true; });
  var charts = [];
  var highlight = null;

  function el(tag, cls, text, parent) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function sv(tag, attrs, parent) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs) if (attrs[k] != null) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function num(v) { return typeof v === 'number' && isFinite(v); }

  // --- formatting -------------------------------------------------------------------------
  function fmtBytes(v) {
    if (!num(v)) return '\u2013';
    var s = v < 0 ? '\u2212' : '', a = Math.abs(v), i = 0;
    while (a >= 1024 && i < UNITS.length - 1) { a /= 1024; i++; }
    return s + (i === 0 ? a.toFixed(0) : a.toFixed(a >= 100 ? 1 : 2)) + ' ' + UNITS[i];
  }
  function fmtCount(v) { return num(v) ? Math.round(v * 100) / 100 + '' : '\u2013'; }
  function fmtExact(v) { return num(v) ? Math.round(v).toLocaleString() + ' B' : ''; }
  function fmt(v, unit) { return unit === 'bytes' ? fmtBytes(v) : fmtCount(v); }
  function fmtLocal(t) {
    return new Date(t).toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric',
      hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }
  function fmtUTC(t) { return new Date(t).toISOString().replace('T', ' ').replace(/\.\d+Z$/, '').replace(/Z$/, '') + ' UTC'; }
  function fmtDur(ms) {
    if (ms < 1000) return Math.round(ms) + ' ms';
    var s = Math.round(ms / 1000);
    if (s < 120) return s + ' s';
    var m = Math.round(s / 60);
    if (m < 120) return m + ' min';
    var h = Math.floor(m / 60);
    if (h < 48) return h + ' h ' + (m % 60) + ' min';
    return Math.floor(h / 24) + ' d ' + (h % 24) + ' h';
  }

  // --- scales -----------------------------------------------------------------------------
  var t0 = N ? T[0] : 0, t1 = N ? T[N - 1] : 1;
  if (t1 - t0 < 1000) { var pad = Math.max(D.interval_ms || 0, 60000) / 2; t0 -= pad; t1 += pad; }

  function niceScale(max, unit) {
    if (!(max > 0)) max = unit === 'bytes' ? 1024 : 1;
    var u = 1;
    if (unit === 'bytes') while (max / u >= 1024 && u < Math.pow(1024, 5)) u *= 1024;
    var raw = max / u / 5, p = Math.pow(10, Math.floor(Math.log10(raw))), m = raw / p;
    var step = (m <= 1 ? 1 : m <= 2 ? 2 : m <= 2.5 ? 2.5 : m <= 5 ? 5 : 10) * p;
    if (unit !== 'bytes' && step < 1) step = 1;
    var top = Math.ceil(max / u / step - 1e-9) * step, ticks = [];
    for (var v = 0; v <= top + step / 2; v += step) ticks.push(v * u);
    var dec = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
    if (step * Math.pow(10, dec) % 1 !== 0) dec++;
    var label = function (v) {
      if (unit !== 'bytes') return (v / u).toFixed(dec);
      if (v === 0) return '0';
      var ui = Math.round(Math.log(u) / Math.log(1024));
      return (v / u).toFixed(dec) + ' ' + UNITS[ui];
    };
    return { max: top * u, ticks: ticks, label: label };
  }

  var TIME_STEPS = [1e3, 2e3, 5e3, 1e4, 15e3, 3e4, 6e4, 12e4, 3e5, 6e5, 9e5, 18e5, 36e5, 72e5, 108e5,
    216e5, 432e5, 864e5, 1728e5, 6048e5, 12096e5, 2592e6];
  function timeTicks(width) {
    var span = t1 - t0, step = TIME_STEPS[TIME_STEPS.length - 1];
    for (var i = 0; i < TIME_STEPS.length; i++) if (span / TIME_STEPS[i] <= width / 95) { step = TIME_STEPS[i]; break; }
    var out = [], off = -new Date(t0).getTimezoneOffset() * 6e4;
    for (var t = Math.ceil((t0 + off) / step) * step - off; t <= t1; t += step) {
      // Keep ticks on local boundaries across a daylight saving change.
      var o2 = -new Date(t).getTimezoneOffset() * 6e4;
      out.push(t + (off - o2));
    }
    var multiDay = span > 864e5;
    return out.map(function (t) {
      var d = new Date(t), midnight = d.getHours() === 0 && d.getMinutes() === 0;
      var label = step >= 864e5 || (multiDay && midnight)
        ? d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' })
        : d.toLocaleTimeString(undefined, step < 6e4 ? { hour: '2-digit', minute: '2-digit', second: '2-digit' }
          : { hour: '2-digit', minute: '2-digit' });
      return { t: t, label: label, strong: multiDay && midnight };
    });
  }

  function nearest(t) {
    var lo = 0, hi = N - 1;
    while (hi - lo > 1) { var mid = (lo + hi) >> 1; if (T[mid] < t) lo = mid; else hi = mid; }
    return Math.abs(T[lo] - t) <= Math.abs(T[hi] - t) ? lo : hi;
  }
  // Runs of drawable points: consecutive, valid, not across a pause or a restart.
  function segments(valid) {
    var out = [], start = -1;
    for (var i = 0; i < N; i++) {
      var ok = valid(i);
      if (start >= 0 && (!ok || breaks[i])) { out.push([start, i - 1]); start = -1; }
      if (ok && start < 0) start = i;
    }
    if (start >= 0) out.push([start, N - 1]);
    return out;
  }
  function bucketPair(i) {
    if (!D.buckets) return [i, i];
    var b = D.b[i];
    if (i > 0 && D.b[i - 1] === b) return [i - 1, i];
    if (i + 1 < N && D.b[i + 1] === b) return [i, i + 1];
    return [i, i];
  }

  // --- one chart --------------------------------------------------------------------------
  function lastValue(v) { for (var i = v.length - 1; i >= 0; i--) if (num(v[i])) return v[i]; return null; }

  function drawChart(c, box) {
    box.textContent = '';
    var head = el('div', 'chart-head', null, box);
    el('h2', null, c.title, head);
    var legend = el('div', 'legend', null, head);
    var stack = c.stack || [], lines = c.lines || [];
    var right = lines.filter(function (l) { return l.axis === 'right'; });
    var W = Math.max(320, box.clientWidth), H = c.height || 210;
    // One right margin for every chart, with or without a right axis, so their time axes align.
    var m = { l: 70, r: 66, t: 16, b: 22 }, pw = W - m.l - m.r, ph = H - m.t - m.b;
    var x = function (t) { return m.l + (t - t0) / (t1 - t0) * pw; };

    // Stack tops, bottom layer first.
    var tops = [], base = new Array(N).fill(0), stackValid = function (i) { return stack.length && num(stack[0].v[i]); };
    stack.forEach(function (s) {
      var top = s.v.map(function (v, i) { return num(v) ? base[i] + v : base[i]; });
      tops.push({ s: s, lo: base, hi: top });
      base = top;
    });
    var maxL = 0, maxR = 0, soft = [];
    if (stack.length) base.forEach(function (v, i) { if (stackValid(i) && v > maxL) maxL = v; });
    lines.forEach(function (l) {
      var mx = 0;
      l.v.forEach(function (v) { if (num(v) && v > mx) mx = v; });
      if (l.axis === 'right') maxR = Math.max(maxR, mx);
      else if (l.soft) soft.push([l, mx]);
      else maxL = Math.max(maxL, mx);
    });
    // A limit far above the data would flatten it: such a line is named instead of drawn.
    var offscale = [];
    soft.forEach(function (p) {
      if (maxL === 0 || p[1] <= maxL * 1.6) maxL = Math.max(maxL, p[1]); else offscale.push(p);
    });
    var sl = niceScale(maxL * 1.04, c.unit), sr = niceScale(maxR * 1.04, c.right_unit || 'count');
    var yl = function (v) { return m.t + ph - v / sl.max * ph; };
    var yr = function (v) { return m.t + ph - v / sr.max * ph; };

    var svg = sv('svg', { viewBox: '0 0 ' + W + ' ' + H, height: H, role: 'img' }, box);
    sv('title', {}, svg).textContent = c.title;
    var g = sv('g', {}, svg);
    sl.ticks.forEach(function (v) {
      sv('line', { 'class': 'grid', x1: m.l, x2: m.l + pw, y1: yl(v), y2: yl(v) }, g);
      sv('text', { x: m.l - 6, y: yl(v) + 4, 'text-anchor': 'end' }, g).textContent = sl.label(v);
    });
    if (right.length) sr.ticks.forEach(function (v) {
      sv('text', { x: m.l + pw + 6, y: yr(v) + 4 }, g).textContent = sr.label(v);
    });
    timeTicks(pw).forEach(function (tk) {
      var xx = x(tk.t);
      sv('line', { 'class': 'grid', x1: xx, x2: xx, y1: m.t, y2: m.t + ph, style: tk.strong ? 'stroke:#ccc' : null }, g);
      // Labels near the ends are anchored inward so the plot's edges do not cut them.
      var anchor = xx > m.l + pw - 34 ? 'end' : xx < m.l + 34 ? 'start' : 'middle';
      sv('text', { x: xx, y: H - 6, 'text-anchor': anchor, style: tk.strong ? 'font-weight:600' : null }, g).textContent = tk.label;
    });
    sv('line', { 'class': 'axis', x1: m.l, x2: m.l + pw, y1: m.t + ph, y2: m.t + ph }, g);

    var clipId = 'clip-' + c.id;
    sv('rect', { x: m.l, y: m.t - 2, width: pw, height: ph + 2 }, sv('clipPath', { id: clipId }, svg));
    var plot = sv('g', { 'clip-path': 'url(#' + clipId + ')' }, svg);
    var segs = segments(stackValid);
    tops.forEach(function (layer) {
      var d = '';
      segs.forEach(function (s) {
        // A lone sample is drawn as a bar: wide when it is the whole report, a sliver otherwise.
        var a = s[0], b = s[1], w = a !== b ? 0 : N === 1 ? 10 : 1.5, i;
        d += 'M' + (x(T[a]) - w).toFixed(1) + ',' + yl(layer.hi[a]).toFixed(1);
        for (i = a; i <= b; i++) d += 'L' + x(T[i]).toFixed(1) + ',' + yl(layer.hi[i]).toFixed(1);
        if (w) d += 'L' + (x(T[a]) + w).toFixed(1) + ',' + yl(layer.hi[a]).toFixed(1) + 'L' + (x(T[a]) + w).toFixed(1) + ',' + yl(layer.lo[a]).toFixed(1);
        for (i = b; i >= a; i--) d += 'L' + x(T[i]).toFixed(1) + ',' + yl(layer.lo[i]).toFixed(1);
        if (w) d += 'L' + (x(T[a]) - w).toFixed(1) + ',' + yl(layer.lo[a]).toFixed(1);
        d += 'Z';
      });
      if (d) sv('path', { d: d, fill: layer.s.color, 'fill-opacity': 0.85, stroke: layer.s.color, 'stroke-width': 0.5 }, plot);
    });
    lines.forEach(function (l) {
      if (offscale.some(function (p) { return p[0] === l; })) return;
      var y = l.axis === 'right' ? yr : yl, d = '';
      segments(function (i) { return num(l.v[i]); }).forEach(function (s) {
        if (s[0] === s[1]) {
          sv('circle', { cx: x(T[s[0]]), cy: y(l.v[s[0]]), r: 2.5, fill: l.color }, plot);
          return;
        }
        d += 'M' + x(T[s[0]]).toFixed(1) + ',' + y(l.v[s[0]]).toFixed(1);
        for (var i = s[0] + 1; i <= s[1]; i++) {
          if (l.step) d += 'H' + x(T[i]).toFixed(1);
          d += 'L' + x(T[i]).toFixed(1) + ',' + y(l.v[i]).toFixed(1);
        }
      });
      if (d) sv('path', { d: d, fill: 'none', stroke: l.color, 'stroke-width': l.width || 1.3,
        'stroke-dasharray': l.dash || null, 'stroke-linejoin': 'round' }, plot);
    });
    offscale.forEach(function (p, k) {
      sv('text', { 'class': 'offscale', x: m.l + pw - 4, y: m.t + 10 + k * 12, 'text-anchor': 'end' }, svg)
        .textContent = '\u2191 ' + p[0].label + ' ' + fmt(lastValue(p[0].v), c.unit) + ' (above the chart)';
    });

    // Marks: trims, restarts and OOM kills, where findings start.
    var marks = sv('g', {}, svg);
    (D.events || []).forEach(function (e) {
      var xx = x(e.t);
      sv('line', { 'class': 'event', x1: xx, x2: xx, y1: m.t, y2: m.t + ph }, marks);
      sv('text', { x: xx + 3, y: m.t + ph - 4, style: 'font-size:10px' }, marks).textContent = e.kind === 'oom' ? 'OOM kill' : 'restart';
    });
    var trims = (D.trims && D.trims.marks) || [];
    if (c.trims && trims.length) {
      // Many trims: marks only, or their lines would cover the chart and their labels collide.
      var lastLabel = -1e9, dense = trims.length > 60;
      trims.forEach(function (tr) {
        var xx = x(tr.t);
        if (xx < m.l - 1 || xx > m.l + pw + 1) return;
        if (!dense) sv('line', { 'class': 'trimline', x1: xx, x2: xx, y1: m.t, y2: m.t + ph }, marks);
        sv('path', { 'class': 'trim', d: 'M' + (xx - 4) + ',' + (m.t - 7) + 'h8l-4,7z' }, marks);
        if (!dense && c.id === 'memory' && num(tr.released) && xx - lastLabel > 76 && xx + 60 < m.l + pw + m.r) {
          sv('text', { 'class': 'trimlabel', x: xx + 5, y: m.t + 1 }, marks).textContent =
            (tr.n ? tr.n + '\u00d7 ' : '') + '\u2212' + fmtBytes(tr.released);
          lastLabel = xx;
        }
      });
    }
    if (c.findings) (D.findings || []).forEach(function (f) {
      if (f.since < t0 || f.since > t1) return;
      var xx = x(f.since), col = f.severity === 'critical' ? '#c62828' : f.severity === 'warning' ? '#ef8f00' : '#1f77b4';
      sv('path', { d: 'M' + xx + ',' + (m.t + ph - 9) + 'l5,5l-5,5l-5,-5z', fill: col, stroke: '#fff' }, marks);
    });

    var hl = sv('g', {}, svg);
    var cross = sv('line', { 'class': 'cross', y1: m.t, y2: m.t + ph, visibility: 'hidden' }, svg);
    var overlay = sv('rect', { x: m.l, y: m.t - 8, width: pw, height: ph + 8, fill: 'transparent' }, svg);

    // Legend: top of the stack first, as drawn.
    var items = stack.slice().reverse().map(function (s) { return [s, false, c.unit]; })
      .concat(lines.map(function (l) { return [l, true, l.axis === 'right' ? c.right_unit : c.unit]; }));
    items.forEach(function (it) {
      var span = el('span', null, null, legend);
      var sw = el('i', it[1] ? 'ln' : null, null, span);
      sw.style.background = it[0].color;
      span.appendChild(document.createTextNode(it[0].label + ' ' + fmt(lastValue(it[0].v), it[2])));
    });
    if (c.note) el('p', 'note', c.note, box);
    if (D.buckets && c.stack) el('p', 'note', 'Each time bucket is drawn by its lowest- and highest-RSS samples; lines by each series\u2019 minimum and maximum.', box);

    var chart = { c: c, x: x, m: m, pw: pw, ph: ph, cross: cross, hl: hl, svg: svg, items: items };
    overlay.addEventListener('mousemove', function (ev) {
      var r = svg.getBoundingClientRect(), px = (ev.clientX - r.left) * W / r.width;
      var t = t0 + (px - m.l) / pw * (t1 - t0);
      if (!N) return;
      var i = nearest(t);
      charts.forEach(function (o) {
        var xx = o.x(T[i]);
        o.cross.setAttribute('x1', xx); o.cross.setAttribute('x2', xx); o.cross.setAttribute('visibility', 'visible');
      });
      showTip(chart, i, t, (t1 - t0) / pw * 6, ev);
    });
    overlay.addEventListener('mouseleave', function () {
      charts.forEach(function (o) { o.cross.setAttribute('visibility', 'hidden'); });
      document.getElementById('od-tip').hidden = true;
    });
    drawHighlight(chart);
    return chart;
  }

  function drawHighlight(o) {
    o.hl.textContent = '';
    if (highlight == null) return;
    var xx = o.x(highlight), lo = o.m.l, hi = o.m.l + o.pw;
    // A finding may have started before the first sample of this report (a rotated file).
    if (xx < lo || xx > hi) {
      xx = xx < lo ? lo : hi;
      sv('text', { x: xx + (xx === lo ? 6 : -6), y: o.m.t + 12, 'text-anchor': xx === lo ? 'start' : 'end', style: 'fill:#c25e00' }, o.hl)
        .textContent = xx === lo ? '\u2190 started before this report: ' + fmtLocal(highlight) : 'starts after the last sample \u2192';
    }
    sv('rect', { 'class': 'hlband', x: xx - 5, y: o.m.t, width: 10, height: o.ph }, o.hl);
    sv('line', { 'class': 'hl', x1: xx, x2: xx, y1: o.m.t, y2: o.m.t + o.ph }, o.hl);
  }

  // --- hover readout ----------------------------------------------------------------------
  function showTip(o, i, t, slack, ev) {
    var tip = document.getElementById('od-tip');
    tip.textContent = '';
    var pair = bucketPair(i), n = D.buckets ? D.buckets.n[D.b[i]] : 1;
    if (n > 1) {
      var b = D.b[i];
      el('div', 't', fmtLocal(D.buckets.t0[b]) + ' \u2013 ' + new Date(D.buckets.t1[b]).toLocaleTimeString(), tip);
      el('div', 'u', fmtUTC(D.buckets.t0[b]) + ' \u2013 ' + fmtUTC(D.buckets.t1[b]), tip);
      el('div', 'u', n + ' samples: lowest \u2013 highest', tip);
    } else {
      el('div', 't', fmtLocal(T[i]), tip);
      el('div', 'u', fmtUTC(T[i]), tip);
    }
    var table = el('table', null, null, tip);
    o.items.forEach(function (it) {
      var s = it[0], unit = it[2], a = s.v[pair[0]], z = s.v[pair[1]];
      if (!num(a) && !num(z)) return;
      var tr = el('tr', null, null, table), sw = el('i', null, null, el('td', null, null, tr));
      sw.style.cssText = 'display:inline-block;width:9px;height:9px;border-radius:2px;background:' + s.color;
      el('td', null, s.label, tr);
      var lo = Math.min(num(a) ? a : z, num(z) ? z : a), hi = Math.max(num(a) ? a : z, num(z) ? z : a);
      el('td', 'v', lo === hi ? fmt(lo, unit) : fmt(lo, unit) + ' \u2013 ' + fmt(hi, unit), tr);
      el('td', 'x', unit === 'bytes' && lo === hi ? fmtExact(lo) : '', tr);
    });
    var near = function (tt) { return Math.abs(tt - t) <= slack; };
    var trims = (o.c.trims && D.trims && D.trims.marks) || [];
    var close = trims.filter(function (tr) { return near(tr.t); });
    if (close.length > 3) {
      // Summed, so the readout stays short where trims are frequent.
      var count = 0, released = 0, most = 0;
      close.forEach(function (tr) {
        count += tr.n || 1;
        if (num(tr.released)) released += tr.released;
        most = Math.max(most, num(tr.max) ? tr.max : num(tr.released) ? tr.released : 0);
      });
      el('div', 'ev', count + ' trims ' + new Date(close[0].t).toLocaleTimeString() + '\u2013' +
        new Date(close[close.length - 1].t1 || close[close.length - 1].t).toLocaleTimeString() +
        ': released ' + fmtBytes(released) + ' in total, at most ' + fmtBytes(most) + ' at once', tip);
    } else close.forEach(function (tr) {
      var text = tr.n
        ? (tr.n === 1 ? '1 trim ' : tr.n + ' trims ') + new Date(tr.t).toLocaleTimeString() + '\u2013' + new Date(tr.t1).toLocaleTimeString() +
          ': released ' + fmtBytes(tr.released) + ' in total, at most ' + fmtBytes(tr.max) + ' at once'
        : 'trim ' + new Date(tr.t).toLocaleTimeString() + ': released ' + fmtBytes(tr.released) +
          (num(tr.before) ? ', RSS ' + fmtBytes(tr.before) + ' \u2192 ' + fmtBytes(tr.after) : '') +
          (num(tr.ns) ? ', ' + (tr.ns / 1e6).toFixed(1) + ' ms' : '') + (tr.reason ? ' (' + tr.reason + ')' : '');
      el('div', 'ev', text, tip);
    });
    (D.events || []).forEach(function (e) { if (near(e.t)) el('div', 'ev', e.text, tip); });
    if (o.c.findings) (D.findings || []).forEach(function (f) {
      if (near(f.since)) el('div', 'ev', f.severity + ' from here: ' + f.title, tip);
    });
    tip.hidden = false;
    var w = tip.offsetWidth, h = tip.offsetHeight;
    var left = ev.clientX + 14, top = ev.clientY + 14;
    if (left + w > window.innerWidth - 4) left = ev.clientX - w - 14;
    if (top + h > window.innerHeight - 4) top = Math.max(4, window.innerHeight - h - 4);
    tip.style.left = Math.max(4, left) + 'px';
    tip.style.top = top + 'px';
  }

  // --- page -------------------------------------------------------------------------------
  function header() {
    var range = document.getElementById('od-range');
    if (!D.samples) { range.textContent = 'No samples in this report.'; return; }
    var parts = [D.samples + (D.samples === 1 ? ' sample' : ' samples')];
    parts.push(D.samples === 1 ? 'at ' + fmtLocal(T[0]) : fmtLocal(T[0]) + ' \u2013 ' + fmtLocal(T[N - 1]) + ' (' + fmtDur(T[N - 1] - T[0]) + ')');
    if (D.interval_ms) parts.push('every ~' + fmtDur(D.interval_ms));
    if (D.pids && D.pids.length) parts.push((D.pids.length === 1 ? 'pid ' : 'pids ') + D.pids.join(', '));
    if (D.buckets) parts.push('drawn as ' + N + ' points (min/max of ' + D.buckets.n.length + ' time buckets)');
    parts.push('times in ' + (Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time'));
    range.textContent = parts.join(' \u00b7 ');
    var sum = document.getElementById('od-summary');
    (D.summary || []).forEach(function (s) {
      var kv = el('div', 'kv', null, sum);
      el('span', null, s.label, kv);
      el('b', null, fmt(s.v, s.unit), kv);
    });
  }

  function findings() {
    var box = document.getElementById('od-findings');
    var list = D.findings || [];
    el('h2', null, list.length ? 'Findings (' + list.length + ')' : 'Findings', box);
    if (!list.length) { el('p', 'note', 'No findings in this report.', box); return; }
    list.forEach(function (f) {
      var sev = /^(critical|warning|info)$/.test(f.severity) ? f.severity : 'info';
      var card = el('div', 'finding ' + sev + (f.active ? '' : ' ended'), null, box);
      card.tabIndex = 0;
      var h = el('div', null, null, card);
      el('span', 'sev', f.severity, h);
      el('span', 'title', f.title, h);
      var meta = el('div', 'meta', null, card);
      meta.appendChild(document.createTextNode(f.id + ' \u00b7 since '));
      var a = el('a', null, fmtLocal(f.since), meta);
      a.href = '#';
      a.title = fmtUTC(f.since);
      meta.appendChild(document.createTextNode(f.active ? ' \u00b7 present in the last sample' : ' \u00b7 last seen ' + fmtLocal(f.last_seen)));
      if (f.evidence && f.evidence.length) {
        var ul = el('ul', null, null, card);
        f.evidence.forEach(function (e) { el('li', null, e, ul); });
      }
      if (f.remedy) {
        var p = el('p', 'remedy', null, card);
        el('b', null, 'Remedy: ', p);
        p.appendChild(document.createTextNode(f.remedy));
      }
      var select = function (ev) {
        ev.preventDefault();
        highlight = f.since;
        Array.prototype.forEach.call(box.querySelectorAll('.finding.selected'), function (c) { c.classList.remove('selected'); });
        card.classList.add('selected');
        charts.forEach(drawHighlight);
        var first = document.querySelector('.chart');
        if (first && first.getBoundingClientRect().top < 0) first.scrollIntoView({ behavior: 'smooth', block: 'start' });
      };
      card.addEventListener('click', select);
      card.addEventListener('keydown', function (ev) { if (ev.key === 'Enter') select(ev); });
    });
  }

  function drawAll() {
    var host = document.getElementById('od-charts');
    host.textContent = '';
    charts = [];
    if (!N) { el('p', 'empty', 'No samples to draw.', host); return; }
    (D.charts || []).forEach(function (c) { charts.push(drawChart(c, el('div', 'chart', null, host))); });
    if (!charts.length) el('p', 'empty', 'The samples carry no memory figures to draw.', host);
  }

  header();
  findings();
  drawAll();
  document.body.setAttribute('data-drawn', charts.length);
  var pending = null, lastWidth = document.getElementById('od-charts').clientWidth;
  window.addEventListener('resize', function () {
    clearTimeout(pending);
    pending = setTimeout(function () {
      var w = document.getElementById('od-charts').clientWidth;
      if (w !== lastWidth) { lastWidth = w; drawAll(); }
    }, 150);
  });
})();
