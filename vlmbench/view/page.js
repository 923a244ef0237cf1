// The run page: filters and sample cards. Every text from the run is placed with textContent;
// nothing from the run is ever parsed as HTML. Images come only from data:image/jpeg URLs.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("run-data").textContent);
  var PAGE = 60;
  var shown = PAGE;
  var IMAGE_URL = /^data:image\/jpeg;base64,[A-Za-z0-9+\/=]+$/;

  function $(id) { return document.getElementById(id); }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function fill(select, options, allLabel) {
    var keep = select.value;
    select.textContent = "";
    if (allLabel !== null) {
      var all = el("option", null, allLabel);
      all.value = "";
      select.appendChild(all);
    }
    options.forEach(function (pair) {
      var option = el("option", null, pair[1]);
      option.value = pair[0];
      select.appendChild(option);
    });
    var values = Array.prototype.map.call(select.options, function (o) { return o.value; });
    select.value = values.indexOf(keep) >= 0 ? keep : values[0] || "";
  }

  function uniq(values) {
    var seen = {};
    var out = [];
    values.forEach(function (v) {
      if (v !== null && v !== undefined && !Object.prototype.hasOwnProperty.call(seen, v)) { seen[v] = true; out.push(v); }
    });
    return out.sort(function (a, b) { return String(a).localeCompare(String(b)); });
  }

  function currentTask() { return data.tasks[Number($("f-task").value)] || { samples: [], prompts: [] }; }

  function counted(samples, key) {
    var counts = {};
    samples.forEach(function (s) { counts[s[key]] = (counts[s[key]] || 0) + 1; });
    return counts;
  }

  function refreshOptions() {
    var task = currentTask();
    fill($("f-category"), uniq(task.samples.map(function (s) { return s.category; })).map(function (c) { return [c, c]; }), "all");
    var category = $("f-category").value;
    var inCategory = task.samples.filter(function (s) { return !category || s.category === category; });
    fill($("f-concept"), uniq(inCategory.map(function (s) { return s.concept; })).map(function (c) { return [c, c]; }), "all");
    var variants = uniq(task.samples.map(function (s) { return s.variant; })).sort(function (a, b) { return a - b; });
    fill($("f-prompt"), variants.map(function (v) {
      var text = task.prompts[v];
      return [String(v), (v + 1) + ": " + (text ? (text.length > 70 ? text.slice(0, 67) + "..." : text) : "prompt " + (v + 1))];
    }), "all");
    var counts = counted(task.samples, "outcome");
    fill($("f-outcome"), data.outcomes.filter(function (o) { return counts[o]; }).map(function (o) { return [o, o + " (" + counts[o] + ")"]; }), "all");
  }

  function matches(sample) {
    var want = {
      category: $("f-category").value, concept: $("f-concept").value, variant: $("f-prompt").value, outcome: $("f-outcome").value
    };
    var search = $("f-search").value.toLowerCase();
    if (want.category && sample.category !== want.category) { return false; }
    if (want.concept && sample.concept !== want.concept) { return false; }
    if (want.variant && String(sample.variant) !== want.variant) { return false; }
    if (want.outcome && sample.outcome !== want.outcome) { return false; }
    if (search) {
      var text = [sample.prompt, sample.response, sample.error, sample.id].join("\n").toLowerCase();
      if (text.indexOf(search) < 0) { return false; }
    }
    return true;
  }

  function figure(sample) {
    var url = sample.thumb ? data.thumbs[sample.thumb] : null;
    if (typeof url === "string" && IMAGE_URL.test(url)) {
      var img = el("img", "thumb");
      img.alt = sample.thumb === "blank" ? "blank image" : "image" + (sample.concept ? " of " + sample.concept : "");
      img.src = url;
      return img;
    }
    return el("div", "noimage", sample.thumb ? "image not available here" : "no image (text only)");
  }

  function field(parent, label, text, cls) {
    parent.appendChild(el("p", "field", label));
    parent.appendChild(el("pre", cls || null, text === null || text === undefined ? "" : text));
  }

  function card(sample) {
    var article = el("article", "sample " + sample.outcome);
    article.setAttribute("data-outcome", sample.outcome);
    article.appendChild(figure(sample));
    var body = el("div", "body");
    var head = el("div", "head");
    head.appendChild(el("span", "sample-id", sample.id));
    head.appendChild(el("span", "badge", sample.outcome));
    body.appendChild(head);
    var facts = [sample.concept, sample.category, sample.label].filter(function (v) { return v; });
    var origin = (sample.served_model !== null ? " · served by " + sample.served_model : "") + (sample.reused ? " · reused from the store" : "");
    body.appendChild(el("p", "meta", facts.join(" · ") + origin));
    field(body, "prompt", sample.prompt, "prompt");
    if (sample.error !== null) { field(body, "error", sample.error, "error"); } else { field(body, "response", sample.response, "response"); }
    var verdict = "parsed: " + (sample.parsed === null ? "-" : sample.parsed) + " · target: " + (sample.target === null ? "-" : sample.target);
    body.appendChild(el("p", "verdict", verdict));
    (sample.verdicts || []).forEach(function (v) {
      var mark = v[2] === true ? "correct" : v[2] === false ? "wrong" : "no verdict";
      body.appendChild(el("p", "verdict judge", "judge " + v[0] + ": " + (v[1] === null ? "unparsed" : v[1]) + " (" + mark + ")"));
    });
    article.appendChild(body);
    return article;
  }

  function render() {
    var task = currentTask();
    var found = task.samples.filter(matches);
    var list = $("samples");
    list.textContent = "";
    found.slice(0, shown).forEach(function (s) { list.appendChild(card(s)); });
    $("summary").textContent = found.length + " of " + task.samples.length + " samples match" +
      (found.length > shown ? "; showing the first " + shown : "");
    $("more").hidden = found.length <= shown;
  }

  function reset() { shown = PAGE; render(); }

  var run = data.run;
  $("run-info").textContent = [run.model, run.backend && run.backend !== run.model ? "(" + run.backend + ")" : "", run.created || "",
    run.complete ? "" : "partial run: killed or interrupted before it finished", run.folder].filter(function (v) { return v; }).join(" · ");
  data.notes.forEach(function (note) { $("notes").appendChild(el("li", null, note)); });
  fill($("f-task"), data.tasks.map(function (t, i) {
    return [String(i), t.name + " (" + t.samples.length + (t.finished ? "" : ", unfinished") + ")"];
  }), null);
  refreshOptions();
  $("f-task").addEventListener("change", function () {
    ["f-category", "f-concept", "f-prompt", "f-outcome"].forEach(function (id) { $(id).value = ""; });
    refreshOptions();
    reset();
  });
  $("f-category").addEventListener("change", function () { $("f-concept").value = ""; refreshOptions(); reset(); });
  ["f-concept", "f-prompt", "f-outcome"].forEach(function (id) { $(id).addEventListener("change", reset); });
  $("f-search").addEventListener("input", reset);
  $("more").addEventListener("click", function () { shown += PAGE; render(); });
  render();
}());
