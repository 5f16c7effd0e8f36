// scale serve page: opens on the gallery; any card starts a query; queries go to the JSON API.
(function () {
  "use strict";
  const $ = (sel) => document.querySelector(sel);
  const PLACEHOLDER = "/static/placeholder.svg";
  // the server's token: proves a state-changing request comes from this page (see guard.py)
  const TOKEN = document.querySelector('meta[name="scale-token"]').content;
  // mode "gallery": browsing the index; "query": results of state.query ({video_id} | {file} | {token})
  const state = { mode: "gallery", query: null, offset: 0 };

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

  async function answer(resp) {
    let data;
    try {
      data = await resp.json();
    } catch (e) {
      data = { error: "the server answered HTTP " + resp.status };
    }
    if (!resp.ok) throw new Error(data.error || "the server answered HTTP " + resp.status);
    return data;
  }

  async function post(body) {
    const init = { method: "POST", headers: { "X-Scale-Token": TOKEN } };
    if (body instanceof FormData) {
      init.body = body;
    } else {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return answer(await fetch("/api/search", init));
  }

  async function showGallery() {
    state.mode = "gallery";
    const opts = options();
    const params = new URLSearchParams({ limit: opts.limit, offset: opts.offset });
    if (opts.class) params.set("class", opts.class);
    setStatus("loading the gallery…");
    try {
      const data = await answer(await fetch("/api/gallery?" + params));
      $("#query-summary").hidden = true;
      $("#view-title").textContent = "gallery" + (data.class ? " · class " + data.class : "") +
        " · click a video to find similar ones";
      draw(data.items, data, false);
      setStatus(data.items.length ? "" : "no videos" + (data.class ? " of class " + data.class : ""));
    } catch (e) {
      setStatus(e.message, true);
    }
  }

  async function run() {
    if (state.mode === "gallery") return showGallery();
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
      summary(data);
      $("#view-title").textContent = "results" + (data.class ? " · class " + data.class : "");
      draw(data.results, data, true);
      setStatus(data.results.length ? "" : "no results" + (data.class ? " of class " + data.class : ""));
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
      img.alt = "poster of the query video";
      img.id = "query-poster";
      el.append(img);
    }
    const text = document.createElement("div");
    text.className = "text";
    const name = q.kind === "video_id" ? q.video_id : q.kind === "file" ? q.filename : "vector";
    const cls = q.class_name ? q.class_name + (q.class_from === "file name" ? " (from the file name)" : "") : "unknown class";
    const line1 = document.createElement("div");
    line1.textContent = "query: " + name + " · " + cls;
    const line2 = document.createElement("div");
    line2.className = "muted";
    line2.textContent = (data.excluded ? data.excluded + " excluded (same video/group) · " : "") +
      (data.total !== null ? data.total + " results" + (data.class ? " of class " + data.class : "") : "");
    text.append(line1, line2);
    el.append(text);
    if (data.precision) {
      const p = data.precision;
      const pk = document.createElement("div");
      pk.className = "pk";
      pk.id = "precision";
      const value = document.createElement("strong");
      value.textContent = "P@" + p.k + " = " + p.value.toFixed(2);
      const what = document.createElement("small");
      what.textContent = "share of " + p.of_class + " among the first " + p.k + " results" +
        (data.class ? ", all classes counted (the class filter does not apply)" : "");
      pk.append(value, what);
      el.append(pk);
    }
    el.hidden = false;
  }

  function card(r, ranked) {
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
    if (ranked) {
      node.querySelector(".rank").textContent = "#" + r.rank;
      node.querySelector(".sim").textContent = r.similarity.toFixed(3);
    }
    node.querySelector(".cls").textContent = r.class_name || "label " + r.label;
    node.querySelector(".vid").textContent = r.video_id;
    node.dataset.videoId = r.video_id;
    const thumb = node.querySelector(".thumb");
    thumb.href = "?id=" + encodeURIComponent(r.video_id);
    thumb.addEventListener("click", (ev) => { ev.preventDefault(); searchId(r.video_id); });
    node.querySelector(".more").textContent = ranked ? "more like this" : "find similar";
    node.querySelector(".more").addEventListener("click", () => searchId(r.video_id));
    return node;
  }

  let renders = 0;
  function draw(items, data, ranked) {
    $("#results").replaceChildren(...items.map((r) => card(r, ranked)));
    $("#results").dataset.renders = String(++renders); // lets a test (or a user script) see a new answer
    $("#results").dataset.mode = state.mode;
    const pager = $("#pager");
    pager.hidden = !items.length && data.offset === 0;
    $("#prev").disabled = data.offset === 0;
    $("#next").disabled = !data.has_more;
    const last = data.offset + items.length;
    $("#page-label").textContent = (items.length ? data.offset + 1 : 0) + "–" + last +
      (data.total !== null && data.total !== undefined ? " of " + data.total : "");
  }

  function searchId(id) {
    $("#video-id").value = id;
    state.mode = "query";
    state.query = { video_id: id };
    state.offset = 0;
    history.replaceState(null, "", "?id=" + encodeURIComponent(id));
    window.scrollTo(0, 0);
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
    $("#video-id").value = ""; // the query is the file now, not the id typed before
    state.mode = "query";
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
  $("#home").addEventListener("click", (ev) => {
    ev.preventDefault();
    state.offset = 0;
    state.query = null;
    history.replaceState(null, "", location.pathname);
    showGallery();
  });

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
  else showGallery();
})();
