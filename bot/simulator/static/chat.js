// The simulator's chat page: one timeline per subscriber, pushes over server-sent events.
// Subscriber names key a Map, never a plain object: "__proto__", "constructor" or "toString"
// are names like any other.
"use strict";

const timelines = new Map();
let current = null;
const $ = (id) => document.getElementById(id);

function timeline(user) {
  if (!timelines.has(user)) timelines.set(user, []);
  return timelines.get(user);
}

function add(user, item) {
  timeline(user).push(item);
  if (user === current) render();
}

function bubble(item) {
  const div = document.createElement("div");
  div.className = "bubble " + item.side + (item.failed ? " failed" : "");
  if (item.tag) {
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = item.tag;
    div.appendChild(tag);
  }
  div.appendChild(document.createTextNode(item.text));
  if (item.xml) {
    const toggle = document.createElement("button");
    toggle.className = "xml-toggle";
    toggle.textContent = " XML";
    const pre = document.createElement("pre");
    pre.className = "xml";
    pre.textContent = item.xml;
    pre.hidden = true;
    toggle.onclick = () => { pre.hidden = !pre.hidden; };
    div.appendChild(toggle);
    div.appendChild(pre);
  }
  return div;
}

function render() {
  const box = $("messages");
  box.replaceChildren(...timeline(current).map(bubble));
  box.scrollTop = box.scrollHeight;
  $("who").textContent = current;
  document.querySelectorAll(".user").forEach((b) => b.classList.toggle("active", b.dataset.user === current));
}

function rawExchange(x) {
  const sent = "→ request (" + (x.deliveries.length) + " deliveries, " + x.ms + " ms)\n" + x.request_xml;
  const body = x.reply_xml || x.reply_body || "(empty)";
  return sent + "\n\n← reply" + (x.problem ? " — " + x.problem : "") + "\n" + body;
}

async function send(line) {
  const user = current;
  if (line.trim() === "/help") { add(user, {side: "sys", text: USAGE}); return; }
  const command = line.trim().startsWith("/");
  if (!command) add(user, {side: "me", text: line});
  let answer;
  try {
    const response = await fetch("/sim/act", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({user, line}),
    });
    // a refusal is JSON {"error"}; anything else (e.g. a proxy's page) is shown by its status
    answer = await response.json().catch(() => ({error: "HTTP " + response.status}));
  } catch (err) {
    add(user, {side: "sys", text: "simulator unreachable: " + err});
    return;
  }
  if (answer.error) { add(user, {side: "sys", text: answer.error}); return; }
  if (command) add(user, {side: "me", text: answer.sent});
  if (!answer.request_xml) return;  // an action only the platform hears
  if (answer.shown) {
    add(user, {side: "bot", text: answer.shown, failed: !!answer.problem,
               tag: answer.reply_type + " · " + answer.ms + " ms", xml: rawExchange(answer)});
  } else {
    add(user, {side: "sys", text: "(no reply · " + answer.ms + " ms)", xml: rawExchange(answer)});
  }
}

function addUser(name) {
  if (!name || document.querySelector('.user[data-user="' + CSS.escape(name) + '"]')) return;
  const li = document.createElement("li");
  li.innerHTML = '<button class="user"></button>';
  li.firstChild.dataset.user = name;
  li.firstChild.textContent = name;
  li.firstChild.onclick = () => { current = name; render(); };
  $("users").appendChild(li);
}

function menuButton(button) {
  const el = document.createElement("button");
  el.className = "menu-button";
  el.textContent = button.name;
  if (button.type === "click") { el.dataset.key = button.key; el.onclick = () => send("/click " + button.key); }
  if (button.type === "view") el.onclick = () => send("/view " + button.url);
  return el;
}

let shownMenu = "";

async function loadMenu() {
  const menu = await (await fetch("/sim/menu")).json();
  if (JSON.stringify(menu) === shownMenu) return;
  shownMenu = JSON.stringify(menu);
  const bar = $("menu");
  bar.replaceChildren();
  for (const top of menu.button) {
    const cell = document.createElement("div");
    const el = menuButton(top);
    cell.appendChild(el);
    if (top.sub_button) {
      const list = document.createElement("div");
      list.className = "submenu";
      for (const sub of top.sub_button) {
        const item = menuButton(sub);
        item.addEventListener("click", () => list.classList.remove("open"));
        list.appendChild(item);
      }
      el.onclick = () => list.classList.toggle("open");
      cell.appendChild(list);
    }
    bar.appendChild(cell);
  }
  if (!menu.created && menu.button.length) {
    bar.title = "menu not created through the API yet: showing the configured one";
  }
}

function listen() {
  const source = new EventSource("/sim/stream?after=0");
  source.addEventListener("delivery", (event) => {
    const entry = JSON.parse(event.data);
    const li = document.createElement("li");
    li.textContent = entry.time + " " + entry.api + "/" + entry.msgtype + " → " +
      (entry.user || entry.openid) + ": " + entry.content;
    $("log").appendChild(li);
    if (entry.api === "reply") return;  // a passive reply: its exchange already shows it
    if (entry.user) {
      addUser(entry.user);
      add(entry.user, {side: "push", text: entry.content, tag: entry.api + " · " + entry.msgtype});
    }
  });
}

document.querySelectorAll(".user").forEach((b) => { b.onclick = () => { current = b.dataset.user; render(); }; });
document.querySelectorAll("#events button").forEach((b) => { b.onclick = () => send(b.dataset.line); });
$("composer").onsubmit = (event) => {
  event.preventDefault();
  const line = $("text").value;
  if (!line.trim()) return;
  $("text").value = "";
  send(line);
};
$("add-user").onsubmit = (event) => {
  event.preventDefault();
  const name = $("new-user").value.trim();
  $("new-user").value = "";
  addUser(name);
  if (name) { current = name; render(); }
};
current = document.querySelector(".user").dataset.user;
render();
loadMenu();
listen();
setInterval(loadMenu, 5000);
