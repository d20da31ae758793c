// The report's per-query table: sort by any column, filter by category and by "failed at 1",
// click a query for its top-k retrieved items (distances) and its ground truth.
// Reads the JSON in #report-data; builds every element with textContent (no HTML from data).
(function () {
  "use strict";
  var PAGE = 100; // rows added per "show more": a big split never builds a huge DOM at once
  var ROW_THUMB = 30, DETAIL_THUMB = 76;

  var data = JSON.parse(document.getElementById("report-data").textContent);
  var metrics = data.metrics, items = data.items, th = data.thumbs;
  var queries = data.queries.map(function (row) {
    var q = {};
    data.query_fields.forEach(function (name, i) { q[name] = row[i]; });
    return q;
  });
  var table = document.getElementById("queries-table");
  var body = table.querySelector("tbody");
  var count = document.getElementById("queries-count");
  var more = document.getElementById("queries-more");
  var categorySelect = document.getElementById("filter-category");
  var failedBox = document.getElementById("filter-failed");

  var state = {
    sort: data.worst_metric ? "m:" + data.worst_metric : "item",
    dir: 1,
    category: "",
    failed: false,
    shown: PAGE,
    open: null
  };

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function fmt(v) {
    return v === null || v === undefined ? "–" : v.toFixed(3);
  }

  function thumb(item, size, kind) {
    var node = el("span", "th " + kind);
    node.style.width = size + "px";
    node.style.height = size + "px";
    var slot = items.thumb[item];
    if (slot >= 0) {
      var sheet = Math.floor(slot / th.per_sheet), n = slot % th.per_sheet;
      node.classList.add("s" + sheet);
      node.style.backgroundSize = th.columns * size + "px auto";
      node.style.backgroundPosition = -(n % th.columns) * size + "px " + -Math.floor(n / th.columns) * size + "px";
    } else {
      node.classList.add("none");
    }
    node.title = items.path[item] + " (item " + item + ", label " + items.label[item] + ")";
    return node;
  }

  function sortValue(q) {
    if (state.sort.slice(0, 2) === "m:") return q.metrics[metrics.indexOf(state.sort.slice(2))];
    if (state.sort === "failed") return q.failed_at_1 === null ? null : q.failed_at_1 ? 1 : 0;
    return q[state.sort];
  }

  function compare(a, b) {
    var x = sortValue(a), y = sortValue(b);
    // Queries without a value (no ground truth) stay last in either direction.
    if (x === null || x === undefined) return y === null || y === undefined ? a.item - b.item : 1;
    if (y === null || y === undefined) return -1;
    if (x < y) return -state.dir;
    if (x > y) return state.dir;
    return a.item - b.item;
  }

  function visible() {
    return queries.filter(function (q) {
      if (state.category && q.category !== state.category) return false;
      if (state.failed && q.failed_at_1 !== true) return false;
      return true;
    }).sort(compare);
  }

  function detail(q) {
    var row = el("tr", "detail");
    var cell = el("td");
    cell.colSpan = table.tHead.rows[0].cells.length;
    var tiles = el("div", "tiles");
    function tile(item, kind, caption, sub) {
      var box = el("figure", "tile " + kind);
      box.appendChild(thumb(item, DETAIL_THUMB, kind));
      box.appendChild(el("figcaption", null, caption));
      if (sub) box.appendChild(el("small", null, sub));
      return box;
    }
    tiles.appendChild(tile(q.item, "query", "query", "label " + q.label));
    var group = el("div", "group");
    q.retrieved.forEach(function (item, rank) {
      var relevant = items.label[item] === q.label;
      group.appendChild(tile(item, relevant ? "hit" : "miss", "#" + (rank + 1) + "  d=" + fmt(q.distances[rank]),
        "label " + items.label[item]));
    });
    tiles.appendChild(el("div", "group-label", "top " + q.retrieved.length + " retrieved"));
    tiles.appendChild(group);
    var truth = el("div", "group");
    q.truth.forEach(function (item) { truth.appendChild(tile(item, "truth", "truth", "item " + item)); });
    if (q.n_gt > q.truth.length) truth.appendChild(el("span", "more-truth", "+" + (q.n_gt - q.truth.length) + " more"));
    if (!q.n_gt) truth.appendChild(el("span", "more-truth", "no ground truth in the gallery"));
    tiles.appendChild(el("div", "group-label", "ground truth (" + q.n_gt + ")"));
    tiles.appendChild(truth);
    cell.appendChild(tiles);
    var info = el("p", "detail-info");
    info.textContent = items.path[q.item] + " · item " + q.item + " · " +
      metrics.map(function (m, i) { return m + " " + fmt(q.metrics[i]); }).join(" · ");
    cell.appendChild(info);
    row.appendChild(cell);
    return row;
  }

  function queryRow(q) {
    var row = el("tr", "q");
    row.tabIndex = 0;
    row.dataset.item = q.item;
    row.dataset.category = q.category === null ? "" : q.category;
    row.dataset.failed = q.failed_at_1 === true ? "1" : "0";
    row.appendChild(el("td", "num", q.item));
    var strip = el("td", "strip");
    strip.appendChild(thumb(q.item, ROW_THUMB, "query"));
    q.retrieved.forEach(function (item) {
      strip.appendChild(thumb(item, ROW_THUMB, items.label[item] === q.label ? "hit" : "miss"));
    });
    row.appendChild(strip);
    row.appendChild(el("td", "num", q.label));
    row.appendChild(el("td", null, q.category === null ? "–" : q.category));
    row.appendChild(el("td", "num", q.n_gt));
    q.metrics.forEach(function (v, i) {
      var cell = el("td", "num metric", fmt(v));
      cell.dataset.metric = metrics[i];
      cell.dataset.value = v === null ? "" : v;
      if (v !== null) cell.style.setProperty("--v", v);
      row.appendChild(cell);
    });
    var top1 = el("td", "top1", q.failed_at_1 === null ? "–" : q.failed_at_1 ? "✗" : "✓");
    top1.classList.add(q.failed_at_1 ? "bad" : "good");
    row.appendChild(top1);
    function toggle() {
      state.open = state.open === q.item ? null : q.item;
      render();
    }
    row.addEventListener("click", toggle);
    row.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(); }
    });
    return row;
  }

  function render() {
    var rows = visible();
    var frag = document.createDocumentFragment();
    rows.slice(0, state.shown).forEach(function (q) {
      var row = queryRow(q);
      frag.appendChild(row);
      if (state.open === q.item) {
        row.classList.add("open");
        frag.appendChild(detail(q));
      }
    });
    body.replaceChildren(frag);
    var shown = Math.min(state.shown, rows.length);
    count.textContent = "showing " + shown + " of " + rows.length + " matching queries (" + queries.length + " in all)";
    more.hidden = rows.length <= state.shown;
    Array.prototype.forEach.call(table.tHead.querySelectorAll("th[data-sort]"), function (h) {
      h.classList.toggle("asc", h.dataset.sort === state.sort && state.dir === 1);
      h.classList.toggle("desc", h.dataset.sort === state.sort && state.dir === -1);
      h.setAttribute("aria-sort", h.dataset.sort !== state.sort ? "none" : state.dir === 1 ? "ascending" : "descending");
    });
  }

  data.categories.forEach(function (c) {
    var option = el("option", null, c);
    option.value = c;
    categorySelect.appendChild(option);
  });
  categorySelect.disabled = data.categories.length === 0;
  categorySelect.addEventListener("change", function () {
    state.category = categorySelect.value;
    state.shown = PAGE;
    render();
  });
  failedBox.addEventListener("change", function () {
    state.failed = failedBox.checked;
    state.shown = PAGE;
    render();
  });
  more.addEventListener("click", function () {
    state.shown += PAGE;
    render();
  });
  Array.prototype.forEach.call(table.tHead.querySelectorAll("th[data-sort]"), function (h) {
    h.tabIndex = 0;
    function sortBy() {
      if (state.sort === h.dataset.sort) state.dir = -state.dir;
      else { state.sort = h.dataset.sort; state.dir = 1; }
      render();
    }
    h.addEventListener("click", sortBy);
    h.addEventListener("keydown", function (e) { if (e.key === "Enter") sortBy(); });
  });
  render();
})();
