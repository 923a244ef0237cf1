// Sorting and the category filter of the leaderboard table. Data comes from the JSON block of the
// page; every string is set with textContent (never parsed as HTML).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("leaderboard-data").textContent);
  var table = document.getElementById("leaderboard");
  var body = table.tBodies[0];
  var select = document.getElementById("category-filter");
  var note = document.getElementById("view-note");
  var columns = {};
  data.columns.forEach(function (column) { columns[column.id] = column; });
  // Until a header is clicked the table follows the configured order: the sort column overall,
  // the category sort column in a category view.
  var state = { column: data.sort.column, direction: data.sort.direction, category: "", chosen: false };

  function cellOf(row, id) {
    return row.querySelector('[data-col="' + id + '"]');
  }

  function setCell(td, entry, perCategory) {
    while (td.firstChild) { td.removeChild(td.firstChild); }
    td.classList.remove("na");
    if (entry === null || entry === undefined) {
      td.textContent = perCategory ? "n/a" : "-";
      td.classList.add("na");
      td.setAttribute("data-value", "");
      if (perCategory) { td.title = "no per-category value for this column"; }
      return;
    }
    // entry: [value, text, 95% CI or "few concepts", [the number beside it, its coverage], tooltip (each number's n)]
    if (entry[4]) { td.title = entry[4]; } else { td.removeAttribute("title"); }
    td.appendChild(document.createTextNode(entry[1]));
    if (entry[2]) {
      // a "[low, high]" interval may wrap after its comma; "few concepts" stays on one line
      td.appendChild(document.createTextNode(" "));
      var span = document.createElement("span");
      span.className = entry[2].charAt(0) === "[" ? "unc ci" : "unc few";
      span.textContent = entry[2];
      td.appendChild(span);
    }
    if (entry[3].length) {
      // the number beside the value, then its coverage: each part kept on one line
      td.appendChild(document.createTextNode(" "));
      var beside = document.createElement("span");
      beside.className = "beside";
      entry[3].forEach(function (text, i) {
        if (i) { beside.appendChild(document.createTextNode(" ")); }
        var part = document.createElement("span");
        part.textContent = text;
        beside.appendChild(part);
      });
      td.appendChild(beside);
    }
    td.setAttribute("data-value", entry[0] === null ? "" : String(entry[0]));
  }

  function showCategory(category) {
    state.category = category;
    Array.prototype.forEach.call(body.rows, function (tr) {
      var row = data.rows[Number(tr.getAttribute("data-row"))];
      var view = row.views[category] || row.views[""];
      Object.keys(view).forEach(function (id) {
        setCell(cellOf(tr, id), view[id], category !== "");
      });
      var rank = row.ranks[category] || row.ranks[""];
      var rankCell = cellOf(tr, "rank");
      rankCell.textContent = rank[0];
      rankCell.setAttribute("data-value", rank[1] === null ? "" : String(rank[1]));
    });
    note.textContent = category ? "Showing values for category: " + category + " (n/a: no per-category value)." : "Showing overall values.";
    if (!state.chosen) {
      state.column = category ? data.sort.category_column : data.sort.column;
      state.direction = category ? data.sort.category_direction : data.sort.direction;
    }
    sortRows();
  }

  function key(tr, id) {
    var value = cellOf(tr, id).getAttribute("data-value");
    if (value === null || value === "") { return null; }
    return (id === "rank" || columns[id].numeric) ? Number(value) : value;
  }

  function compare(a, b) {
    var ka = key(a, state.column), kb = key(b, state.column);
    if (ka === null || kb === null) {
      if (ka === kb) { return order(a, b); }
      return ka === null ? 1 : -1; // missing values last, whichever the direction
    }
    var c = typeof ka === "number" ? ka - kb : ka.localeCompare(kb, undefined, { sensitivity: "base" });
    if (state.direction === "desc") { c = -c; }
    return c !== 0 ? c : order(a, b);
  }

  function order(a, b) {
    return Number(a.getAttribute("data-row")) - Number(b.getAttribute("data-row"));
  }

  function sortRows() {
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(compare);
    rows.forEach(function (tr) { body.appendChild(tr); });
    Array.prototype.forEach.call(table.tHead.querySelectorAll("th[data-col]"), function (th) {
      if (th.getAttribute("data-col") === state.column) {
        th.setAttribute("aria-sort", state.direction === "asc" ? "ascending" : "descending");
      } else {
        th.removeAttribute("aria-sort");
      }
    });
  }

  table.tHead.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-sort]");
    if (!button) { return; }
    var id = button.getAttribute("data-sort");
    if (state.column === id && state.chosen) {
      state.direction = state.direction === "asc" ? "desc" : "asc";
    } else {
      state.column = id;
      // numbers start with the best (the highest, or the lowest where lower is better), text and ranks with the first
      state.direction = (id !== "rank" && columns[id].numeric && !columns[id].lower) ? "desc" : "asc";
    }
    state.chosen = true;
    sortRows();
  });

  select.addEventListener("change", function () { showCategory(select.value); });
  if (select.value) { showCategory(select.value); } // a browser may restore the selection on reload
})();
