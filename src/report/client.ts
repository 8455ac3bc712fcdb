/**
 * The report page's script, inlined into the HTML (no network, no external
 * files). It reads the data from <script type="application/json"
 * id="mkimg-data"> and builds the page with DOM calls only: every string
 * from the image (paths, package names, labels) goes through textContent or
 * setAttribute, never innerHTML, so a file named "<img onerror=…>" is text.
 * Plain ES2019, no template literals (this file is itself one).
 */
export const CLIENT_JS = String.raw`
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('mkimg-data').textContent);
  var ROW = 22;

  // ---- small helpers --------------------------------------------------------
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function add(parent) {
    for (var i = 1; i < arguments.length; i++) if (arguments[i]) parent.appendChild(arguments[i]);
    return parent;
  }
  function size(n) {
    if (n < 1024) return n + ' B';
    var u = ['KiB', 'MiB', 'GiB', 'TiB'], v = n, i = -1;
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return v.toFixed(1) + ' ' + u[i];
  }
  function cmp(a, b) { return a < b ? -1 : a > b ? 1 : 0; }
  function hue(s) {
    var h = 2166136261;
    for (var i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 16777619); }
    return (h >>> 0) % 360;
  }
  function color(s, light) { return 'hsl(' + hue(s) + ',55%,' + (light ? '80%' : '62%') + ')'; }
  function modeString(t, m) {
    var c = { f: '-', d: 'd', l: 'l', h: 'h', o: '?' }[t] || '?', bits = 'rwxrwxrwx', s = '';
    for (var i = 0; i < 9; i++) s += (m & (1 << (8 - i))) ? bits[i] : '-';
    return c + s;
  }
  function table(headers, rows, onRow) {
    var t = el('table'), th = el('tr');
    headers.forEach(function (h) { th.appendChild(el('th', null, h)); });
    add(t, add(el('thead'), th));
    var body = el('tbody');
    rows.forEach(function (r, i) {
      var tr = el('tr');
      r.forEach(function (c) {
        var td = el('td');
        if (c instanceof Node) td.appendChild(c); else td.textContent = c === undefined || c === null ? '' : String(c);
        tr.appendChild(td);
      });
      if (onRow) { tr.className = 'clickable'; tr.addEventListener('click', function () { onRow(i, tr); }); }
      body.appendChild(tr);
    });
    return add(t, body);
  }
  function dl(pairs) {
    var d = el('dl');
    pairs.forEach(function (p) { if (p[1] === undefined || p[1] === null || p[1] === '') return; add(d, el('dt', null, p[0]), el('dd', 'mono', p[1])); });
    return d;
  }
  function section(id, title) {
    var s = el('section', 'tab'); s.id = id;
    if (title) s.appendChild(el('h2', null, title));
    document.getElementById('main').appendChild(s);
    return s;
  }

  // ---- tabs -----------------------------------------------------------------
  var tabs = [];
  function tab(id, label) {
    var b = el('button', 'tabbtn', label); b.id = 'tab-' + id; b.type = 'button';
    b.addEventListener('click', function () { show(id); });
    document.getElementById('tabs').appendChild(b);
    tabs.push(id);
  }
  function show(id) {
    tabs.forEach(function (t) {
      document.getElementById(t).style.display = t === id ? '' : 'none';
      document.getElementById('tab-' + t).classList.toggle('active', t === id);
    });
    if (onShow[id]) onShow[id]();
  }
  var onShow = {};

  // ---- squarified treemap ---------------------------------------------------
  // items: [{v: value > 0, ...}] sorted by v descending; returns [{it, x, y, w, h}].
  function squarify(items, x, y, w, h) {
    var out = [], total = 0, i;
    for (i = 0; i < items.length; i++) total += items[i].v;
    if (total <= 0 || w <= 0 || h <= 0) return out;
    var scale = (w * h) / total, start = 0;
    function worst(sum, max, min, side) {
      var s2 = sum * sum, w2 = side * side;
      return Math.max((w2 * max) / s2, s2 / (w2 * min));
    }
    while (start < items.length) {
      var side = Math.min(w, h), sum = 0, max = 0, min = Infinity, best = Infinity, end = start;
      while (end < items.length) {
        var a = items[end].v * scale, ns = sum + a, nmax = Math.max(max, a), nmin = Math.min(min, a);
        var r = worst(ns, nmax, nmin, side);
        if (end > start && r > best) break;
        best = r; sum = ns; max = nmax; min = nmin; end++;
      }
      if (w >= h) {
        var cw = sum / h, cy = y;
        for (i = start; i < end; i++) { var ih = (items[i].v * scale) / cw; out.push({ it: items[i], x: x, y: cy, w: cw, h: ih }); cy += ih; }
        x += cw; w -= cw;
      } else {
        var rh = sum / w, cx = x;
        for (i = start; i < end; i++) { var iw = (items[i].v * scale) / rh; out.push({ it: items[i], x: cx, y: y, w: iw, h: rh }); cx += iw; }
        y += rh; h -= rh;
      }
      start = end;
    }
    return out;
  }

  // A tree of {name, path, v, kids: Map} from files [{p, s, ...}], by directory or by package.
  function dirTree(files) {
    var root = { name: '/', path: '/', v: 0, kids: new Map(), dir: true };
    files.forEach(function (f) {
      if (f.t !== 'f' || f.s <= 0) return;
      var parts = f.p.split('/').filter(Boolean), n = root;
      n.v += f.s;
      for (var i = 0; i < parts.length; i++) {
        var last = i === parts.length - 1, k = n.kids.get(parts[i]);
        if (!k) { k = { name: parts[i], path: (n.path === '/' ? '' : n.path) + '/' + parts[i], v: 0, kids: new Map(), dir: !last, file: last ? f : null }; n.kids.set(parts[i], k); }
        k.v += f.s; n = k;
      }
    });
    return root;
  }
  function pkgTree(files) {
    var root = { name: 'packages', path: '', v: 0, kids: new Map(), dir: true };
    files.forEach(function (f) {
      if (f.t !== 'f' || f.s <= 0) return;
      var name = f.k || '(no package)', p = root.kids.get(name);
      if (!p) { p = { name: name, path: '', pkg: name, v: 0, kids: new Map(), dir: true }; root.kids.set(name, p); }
      p.kids.set(f.p, { name: f.p, path: f.p, v: f.s, kids: new Map(), dir: false, file: f });
      p.v += f.s; root.v += f.s;
    });
    return root;
  }
  // Children by size, the tail beyond limit folded into one "(n more)" item.
  function biggest(node, limit) {
    var kids = Array.from(node.kids.values()).filter(function (k) { return k.v > 0; });
    kids.sort(function (a, b) { return b.v - a.v || cmp(a.name, b.name); });
    if (kids.length <= limit) return kids;
    var rest = kids.slice(limit - 1), v = 0;
    rest.forEach(function (k) { v += k.v; });
    return kids.slice(0, limit - 1).concat([{ name: '(' + rest.length + ' more)', path: '', v: v, kids: new Map(), dir: false, more: true }]);
  }

  var SVGNS = 'http://www.w3.org/2000/svg';
  function svgEl(tag, attrs) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs) e.setAttribute(k, String(attrs[k]));
    return e;
  }
  function fit(text, w) {
    var n = Math.floor((w - 6) / 6.4);
    if (n <= 1) return '';
    return text.length > n ? text.slice(0, n - 1) + '\u2026' : text;
  }

  // opts: {id, width, height, tint(file) -> fill | undefined, onNode(node)}
  function Treemap(host, opts) {
    this.host = host; this.opts = opts; this.stack = [];
  }
  Treemap.prototype.set = function (root) { this.stack = [root]; this.draw(); };
  Treemap.prototype.draw = function () {
    var self = this, o = this.opts, node = this.stack[this.stack.length - 1];
    this.host.replaceChildren();
    var crumbs = el('div', 'crumbs');
    this.stack.forEach(function (n, i) {
      var b = el('button', 'crumb', i === 0 ? n.name : n.name);
      b.type = 'button';
      b.addEventListener('click', function () { self.stack = self.stack.slice(0, i + 1); self.draw(); });
      add(crumbs, b, i < self.stack.length - 1 ? el('span', null, ' / ') : null);
    });
    add(crumbs, el('span', 'muted', '  ' + size(node.v)));
    this.host.appendChild(crumbs);
    var W = o.width, H = o.height;
    var svg = svgEl('svg', { id: o.id, class: 'treemap', viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, role: 'img' });
    svg.appendChild(add(svgEl('title', {}), document.createTextNode(o.title)));
    var cells = squarify(biggest(node, 60), 0, 0, W, H);
    cells.forEach(function (c) {
      var n = c.it, g = svgEl('g', { class: 'cell' });
      var label = n.pkg || n.name;
      var fill = n.more ? '#ddd' : color(n.pkg || (n.dir ? n.name : (n.file && n.file.k) || n.name), false);
      var r = svgEl('rect', { x: c.x, y: c.y, width: Math.max(0, c.w), height: Math.max(0, c.h), fill: fill, stroke: '#fff', 'stroke-width': 1 });
      if (!n.dir && n.file && o.tint) { var t = o.tint(n.file); if (t) r.setAttribute('fill', t); }
      g.appendChild(r);
      g.appendChild(add(svgEl('title', {}), document.createTextNode(label + '  ' + size(n.v))));
      // Second level inside big directories / packages.
      if (n.dir && c.w > 60 && c.h > 40 && n.kids.size) {
        var inner = squarify(biggest(n, 60), c.x + 2, c.y + 16, c.w - 4, c.h - 18);
        inner.forEach(function (ic) {
          var k = ic.it, f = k.more ? 'hsl(' + hue(n.pkg || n.name) + ',15%,90%)' : color(n.pkg || (k.file && k.file.k) || k.name, true);
          if (!k.dir && k.file && o.tint) { var tt = o.tint(k.file); if (tt) f = tt; }
          var ir = svgEl('rect', { x: ic.x, y: ic.y, width: Math.max(0, ic.w), height: Math.max(0, ic.h), fill: f, stroke: 'rgba(255,255,255,.7)', 'stroke-width': 0.5 });
          ir.appendChild(add(svgEl('title', {}), document.createTextNode((k.path || k.name) + '  ' + size(k.v))));
          g.appendChild(ir);
          if (ic.w > 70 && ic.h > 14) {
            var it = svgEl('text', { x: ic.x + 3, y: ic.y + 11, class: 'sub' });
            it.textContent = fit(k.name.split('/').pop(), ic.w);
            g.appendChild(it);
          }
        });
      }
      if (c.w > 30 && c.h > 13) {
        var tx = svgEl('text', { x: c.x + 3, y: c.y + 12, class: 'label' });
        tx.textContent = fit(label, c.w);
        g.appendChild(tx);
      }
      g.addEventListener('click', function () {
        if (n.more) return;
        if (n.dir && n.kids.size && !n.pkg) { self.stack.push(n); self.draw(); }
        else if (o.onNode) o.onNode(n);
      });
      svg.appendChild(g);
    });
    this.host.appendChild(svg);
  };

  // ---- virtualized list -----------------------------------------------------
  function VList(host, render) {
    var self = this;
    this.items = []; this.render = render;
    this.box = el('div', 'vlist'); this.pad = el('div', 'vpad'); this.rows = el('div', 'vrows');
    add(this.box, add(this.pad, this.rows));
    host.appendChild(this.box);
    this.box.addEventListener('scroll', function () { self.paint(); });
  }
  VList.prototype.set = function (items) { this.items = items; this.pad.style.height = items.length * ROW + 'px'; this.box.scrollTop = 0; this.paint(); };
  VList.prototype.paint = function () {
    var h = this.box.clientHeight || 600, top = this.box.scrollTop;
    var from = Math.max(0, Math.floor(top / ROW) - 10), to = Math.min(this.items.length, Math.ceil((top + h) / ROW) + 10);
    this.rows.style.transform = 'translateY(' + from * ROW + 'px)';
    var frag = document.createDocumentFragment();
    for (var i = from; i < to; i++) frag.appendChild(this.render(this.items[i], i));
    this.rows.replaceChildren(frag);
  };

  function pkgLink(name, open) {
    if (!name) return el('span', 'muted', '(no package)');
    var b = el('button', 'link pkg-link', name); b.type = 'button';
    b.addEventListener('click', function (e) { e.stopPropagation(); open(name); });
    return b;
  }
  function pathLink(path, go) {
    var b = el('button', 'link path-link mono', path); b.type = 'button';
    b.addEventListener('click', function (e) { e.stopPropagation(); go(path); });
    return b;
  }

  // ---- summary cards --------------------------------------------------------
  function cards(host, img, extra) {
    var c = el('div', 'cards');
    function card(k, v, mono) { add(c, add(el('div', 'card'), el('div', 'k', k), el('div', 'v' + (mono ? ' mono' : ''), v))); }
    card('image id', img.imageId, true);
    card('manifest digest', img.manifestDigest, true);
    card('platform', img.platform);
    card('entries', img.fileCount + ' (' + size(img.fileBytes) + ' in files)');
    card('layers', img.layers.length + ' (' + size(img.layers.reduce(function (a, l) { return a + l.size; }, 0)) + ' stored)');
    card('packages', img.sbom ? img.sbom.packageCount + ' Debian packages' : 'no SBOM in the image');
    card('signature binding (org.mkimg.manifest.sha256)', img.binding || 'not set', true);
    (extra || []).forEach(function (e) { card(e[0], e[1]); });
    host.appendChild(c);
  }

  function configView(host, img) {
    var c = img.config;
    add(host, el('h3', null, 'Image config'), dl([
      ['name', img.name], ['file', img.file], ['created', img.created],
      ['entrypoint', c.entrypoint && JSON.stringify(c.entrypoint)], ['cmd', c.cmd && JSON.stringify(c.cmd)],
      ['user', c.user || '(root)'], ['workdir', c.workdir], ['ports', (c.exposedPorts || []).join(' ')],
      ['stop signal', c.stopSignal], ['volumes', (c.volumes || []).join(' ')],
    ]));
    add(host, el('h3', null, 'Environment'), table(['variable'], (c.env || []).map(function (e) { return [e]; })));
    var labels = Object.keys(c.labels || {}).sort(cmp);
    add(host, el('h3', null, 'Labels'), table(['label', 'value'], labels.map(function (k) { return [k, c.labels[k]]; })));
    var b = el('p', 'note');
    b.textContent = img.binding
      ? 'Signature binding: the label org.mkimg.manifest.sha256 = ' + img.binding + ' ties this image to the manifest bytes a signature covers (mkimg verify checks it).'
      : 'No org.mkimg.manifest.sha256 label: this image is not bound to a signed manifest.';
    host.appendChild(b);
    add(host, el('h3', null, 'SBOM'));
    if (img.sbom) {
      add(host, el('p', null, img.sbom.path + ': SPDX 2.3, ' + img.sbom.packageCount + ' Debian packages, ' + img.sbom.fileCount + ' files.'));
      add(host, table(['package', 'version', 'license', 'purl'], img.sbom.packages.map(function (p) { return [p.name, p.version, p.license, p.purl]; })));
    } else host.appendChild(el('p', 'muted', 'No SBOM in the image.'));
  }

  function layersView(host, img, files) {
    var per = img.layers.map(function () { return new Map(); });
    files.forEach(function (f) { if (f.t === 'f' && per[f.l]) { var k = f.k || '(no package)'; per[f.l].set(k, (per[f.l].get(k) || 0) + f.s); } });
    host.appendChild(table(['#', 'digest', 'media type', 'stored', 'uncompressed', 'entries', 'file bytes', 'holds (largest packages)'], img.layers.map(function (l, i) {
      var top = Array.from(per[i].entries()).sort(function (a, b) { return b[1] - a[1] || cmp(a[0], b[0]); }).slice(0, 5);
      return [i, l.digest, l.mediaType, size(l.size) + ' (' + l.size + ' B)', l.uncompressedSize === undefined ? 'unknown' : size(l.uncompressedSize), l.entries, size(l.bytes),
        top.map(function (t) { return t[0] + ' ' + size(t[1]); }).join(', ')];
    })));
  }

  function treemapPair(host, panes, onPkg, goPath) {
    var bar = el('div', 'modes'), mode = 'package', maps = [];
    ['package', 'directory'].forEach(function (m) {
      var b = el('button', 'mode' + (m === mode ? ' active' : ''), 'by ' + m); b.type = 'button'; b.id = 'mode-' + m;
      b.addEventListener('click', function () {
        mode = m;
        Array.prototype.forEach.call(bar.children, function (x) { x.classList.toggle('active', x === b); });
        redraw();
      });
      bar.appendChild(b);
    });
    host.appendChild(bar);
    var row = el('div', 'pair');
    host.appendChild(row);
    var width = panes.length > 1 ? 560 : 1120;
    panes.forEach(function (p) {
      var box = el('div', 'pane');
      add(box, el('h3', null, p.title));
      var tm = el('div'); box.appendChild(tm); row.appendChild(box);
      maps.push({ p: p, tm: new Treemap(tm, { id: p.id, title: p.title, width: width, height: 420, tint: p.tint,
        onNode: function (n) { if (n.pkg) onPkg(n.pkg); else if (n.file) goPath(n.file.p); } }) });
    });
    function redraw() { maps.forEach(function (m) { m.tm.set(mode === 'package' ? pkgTree(m.p.files) : dirTree(m.p.files)); }); }
    redraw();
  }

  // ---- the image view -------------------------------------------------------
  function imageView() {
    var img = D.image, files = D.files, mz = D.minimize;
    document.title = 'mkimg report: ' + (img.name || img.file);
    document.getElementById('title').textContent = img.name || img.file;
    document.getElementById('subtitle').textContent = img.file + ' \u2014 ' + img.imageId;
    var closureByPath = new Map();
    if (mz) mz.closure.forEach(function (c) { closureByPath.set(c.p, c); });
    var sbomPkg = new Map();
    if (img.sbom) img.sbom.packages.forEach(function (p) { sbomPkg.set(p.name, p); });

    tab('overview', 'Overview'); tab('packages', 'Packages'); tab('files', 'Files'); tab('layers', 'Layers'); tab('config', 'Config & SBOM');
    if (mz) tab('minimize', 'Minimization');

    // Packages: after (the image) and, with the report, before.
    var pk = new Map();
    function P(name) { var p = pk.get(name); if (!p) { p = { name: name, files: 0, bytes: 0, bf: 0, bb: 0 }; pk.set(name, p); } return p; }
    files.forEach(function (f) { if (f.t === 'd') return; var p = P(f.k || '(no package)'); p.files++; p.bytes += f.s; });
    if (mz) mz.closure.forEach(function (c) { if (c.t === 'd') return; var p = P(c.k || '(no package)'); p.bf++; p.bb += c.s; });
    var pkgs = Array.from(pk.values()).sort(function (a, b) { return b.bytes - a.bytes || b.bb - a.bb || cmp(a.name, b.name); });

    var ov = section('overview');
    var extra = mz ? [['minimized', mz.before.files + ' \u2192 ' + mz.after.files + ' files, ' + size(mz.before.bytes) + ' \u2192 ' + size(mz.after.bytes)]] : [];
    if (pkgs.length && pkgs[0].bytes > 0) extra.push(['largest package', pkgs[0].name + ' (' + size(pkgs[0].bytes) + ')']);
    cards(ov, img, extra);
    var panes = [{ id: 'treemap-final', title: 'Final image (' + size(img.fileBytes) + ')', files: files }];
    if (mz) panes.push({ id: 'treemap-closure', title: 'Unminimized closure (' + size(mz.before.bytes) + '), removed files pale', files: mz.closure,
      tint: function (f) { return f.kept ? undefined : 'hsl(' + hue(f.k) + ',25%,92%)'; } });
    treemapPair(ov, panes, openPkg, goPath);

    // Packages tab with the per-package panel.
    var ps = section('packages', 'Packages');
    var heads = mz ? ['package', 'version', 'license', 'files', 'bytes', 'files before', 'bytes before', 'removed'] : ['package', 'version', 'license', 'files', 'bytes'];
    ps.appendChild(table(heads, pkgs.map(function (p) {
      var s = sbomPkg.get(p.name) || {};
      var row = [pkgLink(p.name, openPkg), s.version, s.license, p.files, size(p.bytes)];
      if (mz) row.push(p.bf, size(p.bb), p.bb ? Math.round((100 * (p.bb - p.bytes)) / p.bb) + '%' : '');
      return row;
    }), function (i) { openPkg(pkgs[i].name); }));
    var panel = el('div', 'panel'); panel.id = 'pkg-panel'; panel.style.display = 'none';
    ps.insertBefore(panel, ps.children[1]);

    function openPkg(name) {
      show('packages');
      panel.replaceChildren();
      panel.style.display = '';
      var s = sbomPkg.get(name) || {}, p = pk.get(name) || { files: 0, bytes: 0, bf: 0, bb: 0 };
      var close = el('button', 'close', 'close'); close.type = 'button';
      close.addEventListener('click', function () { panel.style.display = 'none'; });
      add(panel, close, el('h3', null, name), dl([['version', s.version], ['license', s.license], ['purl', s.purl],
        ['in the image', p.files + ' files, ' + size(p.bytes)], ['before minimization', mz ? p.bf + ' files, ' + size(p.bb) : undefined]]));
      var mine = files.filter(function (f) { return (f.k || '(no package)') === name && f.t !== 'd'; }).sort(function (a, b) { return b.s - a.s || cmp(a.p, b.p); });
      add(panel, el('h4', null, mz ? 'Kept files and why' : 'Files'));
      var shown = mine.slice(0, 400);
      panel.appendChild(table(mz ? ['path', 'size', 'layer', 'why kept'] : ['path', 'size', 'layer'], shown.map(function (f) {
        var c = closureByPath.get(f.p), r = [pathLink(f.p, goPath), size(f.s), f.l];
        if (mz) r.push(c ? c.why || '' : 'not from the staging root');
        return r;
      })));
      if (mine.length > shown.length) panel.appendChild(el('p', 'muted', (mine.length - shown.length) + ' more: search the Files tab'));
      if (mz) {
        var gone = mz.closure.filter(function (c) { return (c.k || '(no package)') === name && !c.kept && c.t !== 'd'; });
        var det = el('details'); det.id = 'pkg-removed';
        add(det, el('summary', null, gone.length + ' files removed by minimization (' + size(gone.reduce(function (a, c) { return a + c.s; }, 0)) + ')'));
        det.appendChild(table(['path', 'size', 'note'], gone.slice(0, 1000).map(function (c) { return [c.p, size(c.s), c.why || 'not touched by any check']; })));
        panel.appendChild(det);
      }
      panel.scrollIntoView();
    }

    // Files tab: search + virtualized list.
    var fs = section('files', 'Files');
    var q = el('input', 'search'); q.id = 'search'; q.type = 'search'; q.placeholder = 'search paths (substring)';
    var count = el('span', 'muted'); count.id = 'search-count';
    add(fs, add(el('div', 'searchbar'), q, count));
    var all = files.slice().sort(function (a, b) { return cmp(a.p, b.p); });
    var lower = null;
    var list = new VList(fs, function (f) {
      var r = el('div', 'row');
      var c = closureByPath.get(f.p);
      add(r, el('span', 'c-mode mono', modeString(f.t, f.m)), img.layers.length > 1 ? el('span', 'c-layer muted', 'layer ' + f.l) : null, el('span', 'c-size', f.t === 'f' ? size(f.s) : ''),
        el('span', 'c-path mono', f.p + (f.ln !== undefined ? (f.t === 'h' ? ' => ' : ' -> ') + f.ln : '')),
        add(el('span', 'c-pkg'), pkgLink(f.k, openPkg)), mz ? el('span', 'c-why muted', c ? c.why || '' : '') : null);
      return r;
    });
    function filter() {
      var s = q.value.toLowerCase();
      if (!lower) lower = all.map(function (f) { return f.p.toLowerCase(); });
      var out = s ? all.filter(function (f, i) { return lower[i].indexOf(s) >= 0; }) : all;
      count.textContent = out.length + ' of ' + all.length + ' entries';
      list.set(out);
    }
    q.addEventListener('input', filter);
    onShow.files = function () { list.paint(); };
    function goPath(p) { q.value = p; show('files'); filter(); }
    filter();

    layersView(section('layers', 'Layers'), img, files);
    configView(section('config', 'Config and SBOM'), img);

    if (mz) {
      var ms = section('minimize', 'Minimization');
      add(ms, dl([['before', mz.before.files + ' files, ' + size(mz.before.bytes)], ['after', mz.after.files + ' files, ' + size(mz.after.bytes)],
        ['proof rounds', mz.rounds], ['keep-groups', mz.keepGroups.join(', ')], ['keep globs', mz.keepGlobs.join(', ')],
        ['exclude globs', mz.excluded.join(', ')], ['listed directories', mz.listedDirectories.join(', ')]]));
      add(ms, el('h3', null, 'Checks'), table(['check', 'command', 'exit code', 'paths traced'], mz.checks.map(function (c) { return [c.name, JSON.stringify(c.args), c.exitCode, c.tracedPaths]; })));
      var why = new Map();
      mz.closure.forEach(function (c) {
        if (!c.kept || c.t === 'd') return;
        var k = (c.why || '').replace(/ of \/.*$/, ' of \u2026');
        var w = why.get(k) || { n: 0, b: 0 }; w.n++; w.b += c.s; why.set(k, w);
      });
      add(ms, el('h3', null, 'Why files are kept'), table(['reason', 'files', 'bytes'], Array.from(why.entries()).sort(function (a, b) { return b[1].b - a[1].b || cmp(a[0], b[0]); })
        .map(function (e) { return [e[0], e[1].n, size(e[1].b)]; })));
    }
    show('overview');
  }

  // ---- the diff view --------------------------------------------------------
  function diffView() {
    var A = D.a, B = D.b;
    document.title = 'mkimg diff: ' + A.file + ' vs ' + B.file;
    document.getElementById('title').textContent = 'diff: ' + A.file + ' \u2192 ' + B.file;
    document.getElementById('subtitle').textContent = D.identical ? 'identical: the two tars have the same bytes' : 'the images differ';
    tab('overview', 'Overview'); tab('packages', 'Packages'); tab('files', 'Files'); tab('details', 'All differences'); tab('config', 'Config');
    var count = { added: 0, removed: 0, changed: 0 }, status = new Map();
    D.files.forEach(function (f) { count[f.st]++; status.set(f.p, f); });
    var pc = { added: 0, removed: 0, changed: 0, same: 0 };
    D.packages.forEach(function (p) { pc[p.st]++; });

    var ov = section('overview');
    var c = el('div', 'cards');
    function card(k, a, b) { add(c, add(el('div', 'card'), el('div', 'k', k), el('div', 'v mono', 'first:  ' + a), el('div', 'v mono', 'second: ' + b))); }
    card('image id', A.imageId, B.imageId);
    card('entries', A.fileCount + ' (' + size(A.fileBytes) + ')', B.fileCount + ' (' + size(B.fileBytes) + ')');
    card('packages', A.sbom ? A.sbom.packageCount : 'no SBOM', B.sbom ? B.sbom.packageCount : 'no SBOM');
    card('binding label', A.binding || 'not set', B.binding || 'not set');
    ov.appendChild(c);
    var sum = el('p', 'summary'); sum.id = 'diff-summary';
    add(sum, el('span', 'added', count.added + ' files added'), document.createTextNode(', '), el('span', 'removed', count.removed + ' removed'),
      document.createTextNode(', '), el('span', 'changed', count.changed + ' changed'), document.createTextNode('; packages: '),
      el('span', 'added', pc.added + ' added'), document.createTextNode(', '), el('span', 'removed', pc.removed + ' removed'),
      document.createTextNode(', '), el('span', 'changed', pc.changed + ' changed'), document.createTextNode(', ' + pc.same + ' the same'));
    ov.appendChild(sum);
    var tint = function (f) { var s = status.get(f.p); return s ? (s.st === 'added' ? '#6c6' : '#e9b343') : '#cfd6de'; };
    treemapPair(ov, [{ id: 'treemap-final', title: 'Second image: added green, changed amber, same grey', files: D.bFiles, tint: tint }], function (n) { goPkg(n); }, goPath);

    var ps = section('packages', 'Packages');
    var order = { added: 0, removed: 1, changed: 2, same: 3 };
    var plist = D.packages.slice().sort(function (a, b) { return order[a.st] - order[b.st] || cmp(a.name, b.name); });
    var pt = table(['package', 'status', 'first', 'second'], plist.map(function (p) { return [p.name, p.st, p.a, p.b]; }));
    Array.prototype.forEach.call(pt.tBodies[0].rows, function (r, i) { r.className = 'st-' + plist[i].st; });
    ps.appendChild(pt);
    function goPkg(name) {
      show('packages');
      var i = plist.findIndex(function (p) { return p.name === name; });
      if (i >= 0) { var r = pt.tBodies[0].rows[i]; r.classList.add('flash'); r.scrollIntoView(); }
    }

    var fsec = section('files', 'Files');
    var q = el('input', 'search'); q.id = 'search'; q.type = 'search'; q.placeholder = 'search paths (substring)';
    var sel = el('select'); sel.id = 'status-filter';
    ['all', 'added', 'removed', 'changed'].forEach(function (s) { var o = el('option', null, s); o.value = s; sel.appendChild(o); });
    var cnt = el('span', 'muted'); cnt.id = 'search-count';
    add(fsec, add(el('div', 'searchbar'), q, sel, cnt));
    var panel = el('div', 'panel'); panel.id = 'diff-panel'; panel.style.display = 'none';
    fsec.appendChild(panel);
    var list = new VList(fsec, function (f) {
      var r = el('div', 'row clickable st-' + f.st);
      var e = f.b || f.a;
      add(r, el('span', 'c-mode', f.st), el('span', 'c-size', e.t === 'f' ? size(e.s) : ''), el('span', 'c-path mono', f.p),
        el('span', 'c-pkg', e.k), el('span', 'c-why muted', f.what.join(', ')));
      r.addEventListener('click', function () { openFile(f); });
      return r;
    });
    function filter() {
      var s = q.value.toLowerCase(), st = sel.value;
      var out = D.files.filter(function (f) { return (st === 'all' || f.st === st) && (!s || f.p.toLowerCase().indexOf(s) >= 0); });
      cnt.textContent = out.length + ' of ' + D.files.length + ' differing entries';
      list.set(out);
    }
    q.addEventListener('input', filter); sel.addEventListener('change', filter);
    onShow.files = function () { list.paint(); };
    function goPath(p) { q.value = p; sel.value = 'all'; show('files'); filter(); }
    function openFile(f) {
      panel.replaceChildren(); panel.style.display = '';
      var close = el('button', 'close', 'close'); close.type = 'button';
      close.addEventListener('click', function () { panel.style.display = 'none'; });
      add(panel, close, el('h3', 'mono', f.p), el('p', null, f.st + (f.what.length ? ': ' + f.what.join(', ') : '')));
      function desc(e) { return e ? modeString(e.t, e.m) + ' ' + e.u + ':' + e.g + ' ' + (e.t === 'f' ? e.s + ' B' : '') + (e.ln !== undefined ? ' -> ' + e.ln : '') + (e.k ? ' [' + e.k + ']' : '') : 'absent'; }
      panel.appendChild(dl([['first', desc(f.a)], ['second', desc(f.b)]]));
      if (f.hunks) {
        var pre = el('div', 'udiff mono');
        f.hunks.forEach(function (h) {
          var na = h.lines.filter(function (l) { return l[0] !== '+'; }).length, nb = h.lines.filter(function (l) { return l[0] !== '-'; }).length;
          pre.appendChild(el('div', 'hh', '@@ -' + (na ? h.a : h.a - 1) + ',' + na + ' +' + (nb ? h.b : h.b - 1) + ',' + nb + ' @@'));
          h.lines.forEach(function (l) { pre.appendChild(el('div', l[0] === '+' ? 'ins' : l[0] === '-' ? 'del' : 'ctx', l)); });
        });
        panel.appendChild(pre);
      } else if (f.textNote) panel.appendChild(el('p', 'muted', f.textNote));
    }
    filter();

    var ds = section('details', 'All differences (mkimg diff)');
    ds.appendChild(D.differences.length ? table(['difference'], D.differences.map(function (d) { return [d]; })) : el('p', 'muted', 'none'));
    var cs = section('config', 'Config');
    var pair = el('div', 'pair');
    var l = el('div', 'pane'), r = el('div', 'pane');
    add(l, el('h3', null, 'First: ' + A.file)); configView(l, A); add(r, el('h3', null, 'Second: ' + B.file)); configView(r, B);
    cs.appendChild(add(pair, l, r));
    show('overview');
  }

  if (D.kind === 'diff') diffView(); else imageView();
  document.body.setAttribute('data-ready', '1');
})();
`;
