// rollcall's presence page, kept live. The server rendered who was present as of the
// stream sequence in main's data-last-event-id; this follows /events from there. An
// event may come twice (the states may show some that follow that sequence), so each
// is applied idempotently: a stint is a participantId and its joinedAt. Names and IDs
// are text, never markup: textContent and dataset only.
"use strict";
(() => {
  const main = document.querySelector("main");
  const feed = document.getElementById("feed");
  const rules = JSON.parse(main.dataset.marks);
  let last = main.dataset.lastEventId; // the last event applied
  const gone = new Set(); // stints that left: participantId + " " + joinedAt
  const ended = new Set(); // sessions that ended: a late event does not bring them back

  const highlight = 3000; // ms that a join or a leave stays marked
  const retryFirst = 500; // ms before connecting again, doubling up to retryMax
  const retryMax = 5000;

  const attr = (name, value) => "[" + name + '="' + CSS.escape(value) + '"]';
  const clone = (id) => document.getElementById(id).content.firstElementChild.cloneNode(true);
  const clock = (iso) => new Date(iso).toLocaleTimeString();

  // mark applies the server's rules (page.go's markRules): the first that matches.
  function mark(mode, sdkType) {
    mode = (mode || "").toLowerCase();
    sdkType = (sdkType || "").toLowerCase();
    const rule = rules.find((r) => (r.modes || []).includes(mode) || (r.sdkTypes || []).includes(sdkType));
    return rule ? rule.mark : "";
  }

  function since(el, joinedAt) {
    const t = el.querySelector("time");
    t.dateTime = joinedAt || "";
    t.textContent = joinedAt ? "since " + clock(joinedAt) : "";
    t.title = joinedAt ? new Date(joinedAt).toLocaleString() : "";
  }

  // room finds a room's element, or adds it in order of ID.
  function room(id) {
    let r = main.querySelector("section.room" + attr("data-room", id));
    if (r) return r;
    r = clone("room-template");
    r.dataset.room = id;
    r.querySelector(".id").textContent = id;
    const after = [...main.querySelectorAll("section.room")].find((x) => x.dataset.room > id);
    main.insertBefore(r, after || null);
    main.querySelector(".none").hidden = true;
    return r;
  }

  // session finds a live session's element, or adds it to its room in order of ID.
  function session(d) {
    const r = room(d.roomId);
    let s = r.querySelector("article.session" + attr("data-session-id", d.sessionId));
    if (s) return s;
    s = clone("session-template");
    s.dataset.sessionId = d.sessionId;
    s.dataset.roomId = d.roomId;
    s.querySelector(".id").textContent = d.sessionId;
    const after = [...r.querySelectorAll("article.session")].find((x) => x.dataset.sessionId > d.sessionId);
    r.insertBefore(s, after || null);
    return s;
  }

  // count writes the counts of a room and its sessions, and whether it has none.
  function count(r) {
    let n = 0;
    for (const s of r.querySelectorAll("article.session")) {
      const k = s.querySelectorAll("[data-participant-id]").length;
      s.querySelector(":scope > h3 .count").textContent = k + " present";
      n += k;
    }
    r.querySelector(":scope > h2 .count").textContent = n + " present";
    r.querySelector(":scope > .empty").hidden = r.querySelector("article.session") !== null;
  }

  function flash(el, cls) {
    el.classList.add(cls);
    setTimeout(() => el.classList.remove(cls), highlight);
  }

  function joined(d) {
    const key = d.participantId + " " + (d.joinedAt || "");
    if (ended.has(d.sessionId) || gone.has(key)) return;
    const s = session(d);
    const old = s.querySelector(attr("data-participant-id", d.participantId));
    if (old && old.dataset.joinedAt >= (d.joinedAt || "")) return; // this stint or a later one is shown
    const p = clone("participant-template");
    p.dataset.participantId = d.participantId;
    p.dataset.joinedAt = d.joinedAt || "";
    p.querySelector(".name").textContent = d.name || d.participantId;
    const m = mark(d.mode, d.sdkType);
    const mk = p.querySelector(".mark");
    mk.textContent = m;
    mk.dataset.mark = m;
    mk.hidden = !m;
    p.querySelector(".mode").textContent = d.mode || "";
    p.querySelector(".sdk").textContent = d.sdkType || "";
    p.querySelector(".pid").textContent = d.participantId;
    since(p, d.joinedAt);
    if (old) old.remove(); // an earlier stint whose left did not come
    const ul = s.querySelector("ul");
    const after = [...ul.querySelectorAll("[data-participant-id]")].find((x) => x.dataset.joinedAt > p.dataset.joinedAt);
    ul.insertBefore(p, after || null);
    flash(p, "joined");
    count(s.closest("section.room"));
  }

  // left takes the stint off at once (no longer data-participant-id: no longer
  // present), and shows it leaving for a moment.
  function left(d) {
    const key = d.participantId + " " + (d.joinedAt || "");
    gone.add(key);
    const s = main.querySelector("article.session" + attr("data-session-id", d.sessionId));
    const p = s && s.querySelector(attr("data-participant-id", d.participantId) + attr("data-joined-at", d.joinedAt || ""));
    if (!p) return;
    delete p.dataset.participantId;
    p.classList.add("left");
    setTimeout(() => p.remove(), highlight);
    count(s.closest("section.room"));
  }

  function started(d) {
    if (ended.has(d.sessionId)) return;
    count(session(d).closest("section.room"));
  }

  // sessionEnded takes the session off the page: an ended session leaves it.
  function sessionEnded(d) {
    ended.add(d.sessionId);
    const s = main.querySelector("article.session" + attr("data-session-id", d.sessionId));
    if (!s) return;
    const r = s.closest("section.room");
    s.remove();
    r.querySelector(":scope > .empty").textContent = "No live session: the last ended at " + clock(d.end || d.observedAt) + ".";
    count(r);
  }

  const apply = {
    "live.videosdk.participant.joined": joined,
    "live.videosdk.participant.left": left,
    "live.videosdk.session.started": started,
    "live.videosdk.session.ended": sessionEnded,
  };

  function state(s, text) {
    feed.dataset.state = s;
    feed.textContent = text;
  }

  // connect follows the feed after the last event applied. On an error it closes
  // the connection and opens another from there itself, rather than let the browser
  // reconnect, which it does not after an answer that is not an event stream (a
  // worker starting answers 503).
  let wait = retryFirst;
  function connect() {
    const es = new EventSource("events?lastEventId=" + encodeURIComponent(last));
    es.onopen = () => {
      wait = retryFirst;
      state("live", "Live: changes show as they happen.");
    };
    es.onerror = () => {
      es.close();
      state("reconnecting", "Reconnecting…");
      setTimeout(connect, wait);
      wait = Math.min(2 * wait, retryMax);
    };
    for (const [type, f] of Object.entries(apply)) {
      es.addEventListener(type, (m) => {
        if (m.lastEventId) last = m.lastEventId;
        let e;
        try {
          e = JSON.parse(m.data);
        } catch {
          return; // not an event: nothing to apply
        }
        f(e.data);
      });
    }
  }

  for (const p of main.querySelectorAll("li.participant")) since(p, p.dataset.joinedAt);
  state("connecting", "Connecting…");
  connect();
})();
