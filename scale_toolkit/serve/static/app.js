// scale serve page: runs queries against the JSON API and draws the result cards.
(function () {
  "use strict";
  const $ = (sel) => document.querySelector(sel);
  const PLACEHOLDER = "/static/placeholder.svg";
  const state = { query: null, offset: 0 }; // query: {video_id} | {file} | {token}

  function setStatus(text, isError) {
    const el = $("#status");
    el.textContent = text || "";
    el.classList.toggle("error", !!isError);
  }

  function options() {
    return {
      limit: parseInt($("#limit").value, 10),
      offset: state.offset,
      class: $("#class-filter").value || null,
      // the toggle: off shows everything, the query video itself included
      exclude: $("#exclude-group").checked ? "group" : "none",
    };
  }

  async function post(body) {
    const init = { method: "POST" };
    if (body instanceof FormData) {
      init.body = body;
    } else {
      init.headers = { "Content-Type": "application/json" };
      init.body = JSON.stringify(body);
    }
    const resp = await fetch("/api/search", init);
    let data;
    try {
      data = await resp.json();
    } catch (e) {
      data = { error: "HTTP " + resp.status };
    }
    if (!resp.ok) throw new Error(data.error || "HTTP " + resp.status);
    return data;
  }

  async function run() {
    if (!state.query) return;
    const opts = options();
    let body;
    if (state.query.file) {
      body = new FormData();
      body.append("file", state.query.file);
      for (const [k, v] of Object.entries(opts)) if (v !== null) body.append(k, String(v));
      setStatus("embedding " + state.query.file.name + " (decoding and running the backbone)…");
    } else {
      body = Object.assign({}, state.query, opts);
      setStatus("searching…");
    }
    try {
      const data = await post(body);
      if (state.query.file && data.query.token) state.query = { token: data.query.token };
      render(data);
      setStatus("");
    } catch (e) {
      setStatus(e.message, true);
    }
  }

  function summary(data) {
    const q = data.query;
    const el = $("#query-summary");
    el.replaceChildren();
    if (q.poster) {
      const img = document.createElement("img");
      img.src = q.poster;
      img.alt = "query poster";
      el.append(img);
    }
    const text = document.createElement("div");
    const name = q.kind === "video_id" ? q.video_id : q.kind === "file" ? q.filename : "vector";
    const cls = q.class_name ? q.class_name + (q.class_from === "file name" ? " (from the file name)" : "") : "unknown class";
    const line1 = document.createElement("div");
    line1.textContent = "query: " + name + " · " + cls;
    const line2 = document.createElement("div");
    line2.className = "muted";
    line2.textContent = (data.excluded ? data.excluded + " excluded (same video/group) · " : "") +
      (data.total !== null ? data.total + " results" : "");
    text.append(line1, line2);
    el.append(text);
    if (data.precision) {
      const pk = document.createElement("div");
      pk.className = "pk";
      pk.id = "precision";
      pk.textContent = "P@" + data.precision.k + " = " + data.precision.value.toFixed(2);
      el.append(pk);
    }
    el.hidden = false;
  }

  function card(r) {
    const node = $("#card-template").content.firstElementChild.cloneNode(true);
    if (r.match === true) node.classList.add("hit");
    if (r.match === false) node.classList.add("miss");
    const img = node.querySelector("img");
    img.src = r.poster || PLACEHOLDER;
    img.alt = r.video_id;
    if (r.preview) {
      node.addEventListener("mouseenter", () => { img.src = r.preview; });
      node.addEventListener("mouseleave", () => { img.src = r.poster; });
    }
    node.querySelector(".rank").textContent = "#" + r.rank;
    node.querySelector(".sim").textContent = r.similarity.toFixed(3);
    node.querySelector(".cls").textContent = r.class_name || "label " + r.label;
    node.querySelector(".vid").textContent = r.video_id;
    node.dataset.videoId = r.video_id;
    node.querySelector(".more").addEventListener("click", () => searchId(r.video_id));
    return node;
  }

  let renders = 0;
  function render(data) {
    summary(data);
    $("#results").replaceChildren(...data.results.map(card));
    $("#results").dataset.renders = String(++renders); // lets a test (or a user script) see a new answer
    if (!data.results.length) setStatus("no results" + (data.class ? " of class " + data.class : ""));
    const pager = $("#pager");
    pager.hidden = data.offset === 0 && !data.has_more;
    $("#prev").disabled = data.offset === 0;
    $("#next").disabled = !data.has_more;
    const last = data.offset + data.results.length;
    $("#page-label").textContent = (data.results.length ? data.offset + 1 : 0) + "–" + last +
      (data.total !== null ? " of " + data.total : "");
  }

  function searchId(id) {
    $("#video-id").value = id;
    state.query = { video_id: id };
    state.offset = 0;
    history.replaceState(null, "", "?id=" + encodeURIComponent(id));
    run();
  }

  $("#by-id").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const id = $("#video-id").value.trim();
    if (id) searchId(id);
  });

  $("#by-file").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const file = $("#video-file").files[0];
    if (!file) return setStatus("choose a video file first", true);
    const maxMb = parseFloat(document.body.dataset.maxUpload);
    if (file.size > maxMb * 1048576) return setStatus(file.name + " is over the upload limit of " + maxMb + " MiB", true);
    state.query = { file: file };
    state.offset = 0;
    history.replaceState(null, "", location.pathname);
    run();
  });

  for (const sel of ["#class-filter", "#exclude-group", "#limit"]) {
    $(sel).addEventListener("change", () => { state.offset = 0; run(); });
  }
  $("#prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - options().limit); run(); });
  $("#next").addEventListener("click", () => { state.offset += options().limit; run(); });

  // id suggestions from the API (the gallery can hold tens of thousands of ids)
  let timer = null;
  $("#video-id").addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const q = $("#video-id").value.trim();
      const resp = await fetch("/api/items?limit=20&q=" + encodeURIComponent(q));
      if (!resp.ok) return;
      const list = $("#id-list");
      list.replaceChildren(...(await resp.json()).items.map((id) => {
        const o = document.createElement("option");
        o.value = id;
        return o;
      }));
    }, 150);
  });

  const first = new URLSearchParams(location.search).get("id");
  if (first) searchId(first);
})();
