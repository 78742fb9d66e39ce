/* Sandbox chat console: plays the Lark client against the bot's built-in fake Lark.
 * Plain JS, no build step, no external resources. Cards are drawn from their Card JSON 2.0. */
"use strict";

const API = "/sandbox/api";
const S = {
  chats: [], users: [], bot: { name: "Bot", open_id: "" }, chat: null, user: null,
  lang: localStorage.getItem("sandbox.lang") || "en_us", mention: true, rendered: new Map(), polling: null,
};

const UI = {
  en_us: {
    tagline: "A fake Lark and a fake GHL with demo data: nothing leaves this machine.", chats: "Chats",
    whoami: "Who am I", language: "Card language",
    digest: "⏰ Send digest now", publish: "📣 Publish a post in GHL now", locations: "GHL sub-accounts",
    joined: "👋 Bot joins this chat", scheduler: "Scheduler and Lark events, on demand",
    schedulerHint: "The digest goes to this chat; the new post is untagged, so the auto-tagging poll suggests (and, in the group, writes) tags and announces it.",
    send: "Send", p2p: "direct message", group: "group", placeholder: "Type a message, e.g. /tags",
    you: "You are", member: "member", owner: "group owner", json: "{ } JSON", updated: "updated",
    replyTo: "reply to", empty: "No messages yet. Try /help or /tags.",
  },
  zh_cn: {
    tagline: "内置的假 Lark 和假 GHL，带演示数据：不会连接外网。", chats: "会话", whoami: "我是谁",
    language: "卡片语言", scheduler: "手动触发定时任务和 Lark 事件", digest: "⏰ 立即发送摘要",
    publish: "📣 在 GHL 中立即发布帖子", joined: "👋 机器人加入此会话",
    locations: "GHL 子账户",
    schedulerHint: "摘要发到当前会话；新帖子没有标签，自动打标签轮询会给出建议（群里会写回 GHL）并发布通知。",
    send: "发送", p2p: "单聊", group: "群聊", placeholder: "输入消息，例如 /tags", you: "当前身份",
    member: "成员", owner: "群主", json: "{ } JSON", updated: "已更新", replyTo: "回复",
    empty: "还没有消息。试试 /help 或 /tags。",
  },
};
const QUICK = ["/help", "/tags", "/tags summer", "/stats", "/digest status", "/digest on 09:00 Asia/Shanghai",
  "/digest now", "/autotag rules", "/location", "/connect", "/audit"];

const $ = (sel) => document.querySelector(sel);
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}
function ui(key) { return (UI[S.lang] || UI.en_us)[key] || UI.en_us[key] || key; }

// ----- text helpers ----------------------------------------------------------------------------------

/** Text of a plain_text / lark_md object (or string) in the chosen language, falling back to `content`. */
function txt(obj) {
  if (obj === undefined || obj === null) return "";
  if (typeof obj === "string") return obj;
  const i18n = obj.i18n_content || obj.i18n;
  if (i18n && typeof i18n[S.lang] === "string") return i18n[S.lang];
  if (typeof obj.content === "string") return obj.content;
  if (typeof obj.text === "string") return obj.text;
  return "";
}

function escapeHtml(s) {
  return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}
function decodeEntities(s) {
  return s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&#39;/g, "'")
    .replace(/&nbsp;/g, " ").replace(/&amp;/g, "&");
}

const FONT_COLOURS = {
  green: "#2ea121", red: "#d83931", grey: "#8f959e", gray: "#8f959e", blue: "#245bdb", orange: "#de7802",
  yellow: "#b38b00", purple: "#6425d0", violet: "#9f2d9f", carmine: "#c71f6e", wathet: "#0e7ea8",
  turquoise: "#078372", indigo: "#3a45c7", default: "inherit",
};
const CHART_COLOURS = ["#3370ff", "#34c724", "#ff8800", "#7f3bf5", "#f54a45", "#14c0ff", "#ffc60a", "#f14ba9"];

function nameFor(id, fallback) {
  if (id === "all") return S.lang === "zh_cn" ? "所有人" : "all";
  const u = S.users.find((x) => x.open_id === id);
  if (u) return u.name;
  if (id === S.bot.open_id) return S.bot.name;
  return fallback || id;
}

/** Lark markdown (the subset cards use) → safe HTML. Everything not recognised is escaped. */
function inlineMd(src) {
  const slots = [];
  const keep = (html) => { slots.push(html); return `\u0000${slots.length - 1}\u0000`; };
  let s = src.replace(/\u0000/g, "");  // NUL marks our placeholders: card text may not forge one
  s = s.replace(/\\([\\`*_~[\]()#>+\-.!|])/g, (_, c) => keep(escapeHtml(c)));
  s = s.replace(/`([^`\n]+)`/g, (_, c) => keep(`<code>${escapeHtml(decodeEntities(c))}</code>`));
  s = s.replace(/<at\s+(?:id|user_id|open_id|email)\s*=\s*["']?([^"'\s>]+)["']?\s*>(.*?)<\/at>/gi,
    (_, id, name) => keep(`<span class="lk-at">@${escapeHtml(nameFor(id, decodeEntities(name)))}</span>`));
  let open = 0;
  s = s.replace(/<font\s+color\s*=\s*["']?([a-zA-Z_-]+)["']?\s*>/gi, (_, c) => {
    open += 1;
    const colour = FONT_COLOURS[c.toLowerCase()] || "inherit";
    return keep(`<span class="lk-font" data-color="${escapeHtml(c)}" style="color:${colour}">`);
  });
  s = s.replace(/<\/font>/gi, () => { if (open > 0) { open -= 1; return keep("</span>"); } return ""; });
  s = s.replace(/<text_tag[^>]*>(.*?)<\/text_tag>/gi, (_, t) => keep(`<code>${escapeHtml(decodeEntities(t))}</code>`));
  // escape the rest, keeping the entities the bot already wrote (&lt; &gt; &amp; …)
  s = s.replace(/&(?!(?:lt|gt|amp|quot|#39|#\d+|nbsp);)/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  s = s.replace(/\[([^\]\n]+)\]\((https?:\/\/[^\s)]+)\)/g,
    (_, label, url) => keep(`<a href="${url.replace(/"/g, "&quot;")}" target="_blank" rel="noopener">${label}</a>`));
  s = s.replace(/\*\*(.+?)\*\*/g, "<b>$1</b>");
  s = s.replace(/(^|[^*])\*([^*\s][^*]*?)\*(?!\*)/g, "$1<i>$2</i>");
  s = s.replace(/~~(.+?)~~/g, "<s>$1</s>");
  // slots may nest (a link label holding code), never deeper than there are slots
  for (let depth = 0; depth <= slots.length && /\u0000\d+\u0000/.test(s); depth += 1) {
    s = s.replace(/\u0000(\d+)\u0000/g, (_, i) => slots[Number(i)] ?? "");
  }
  return s + "</span>".repeat(open);
}

function markdownHtml(src) {
  const lines = String(src).replace(/\r\n?/g, "\n").split("\n");
  const out = [];
  let list = null; // {type: "ul"|"ol", items: []}
  let para = [];
  const flushPara = () => { if (para.length) { out.push(`<p>${para.join("<br>")}</p>`); para = []; } };
  const flushList = () => {
    if (list) { out.push(`<${list.type}>${list.items.map((i) => `<li>${i}</li>`).join("")}</${list.type}>`); list = null; }
  };
  for (const raw of lines) {
    const line = raw.replace(/\s+$/, "");
    let m;
    if ((m = line.match(/^\s*[-*+]\s+(.*)$/)) && !/^\s*[-*_]{3,}$/.test(line)) {
      flushPara(); if (!list || list.type !== "ul") { flushList(); list = { type: "ul", items: [] }; }
      list.items.push(inlineMd(m[1])); continue;
    }
    if ((m = line.match(/^\s*\d+[.)]\s+(.*)$/))) {
      flushPara(); if (!list || list.type !== "ol") { flushList(); list = { type: "ol", items: [] }; }
      list.items.push(inlineMd(m[1])); continue;
    }
    flushList();
    if ((m = line.match(/^(#{1,6})\s+(.*)$/))) { flushPara(); out.push(`<div class="lk-h${Math.min(m[1].length, 3)}">${inlineMd(m[2])}</div>`); continue; }
    if ((m = line.match(/^\s*>\s?(.*)$/))) { flushPara(); out.push(`<blockquote>${inlineMd(m[1])}</blockquote>`); continue; }
    if (/^\s*([-*_])\1{2,}\s*$/.test(line)) { flushPara(); out.push('<hr class="lk-hr">'); continue; }
    if (line === "") { flushPara(); continue; }
    para.push(inlineMd(line));
  }
  flushPara(); flushList();
  return out.join("");
}

// ----- card rendering ----------------------------------------------------------------------------------

/** Renders one card. `ctx` carries the message id and, inside a form, the form's field getters. */
function renderCard(card, messageId) {
  const root = el("div", "lk-card");
  root.dataset.testid = "card";
  const h = card.header;
  if (h && (h.title || h.subtitle)) {
    const head = el("div", `lk-header lk-tpl-${h.template || "default"}`);
    head.dataset.template = h.template || "default";
    head.appendChild(el("div", "lk-title", txt(h.title)));
    if (h.subtitle) head.appendChild(el("div", "lk-subtitle", txt(h.subtitle)));
    root.appendChild(head);
  }
  const body = el("div", "lk-body");
  const elements = (card.body && card.body.elements) || card.elements || [];
  renderElements(elements, body, { messageId, form: null });
  root.appendChild(body);
  return root;
}

function renderElements(elements, parent, ctx) {
  for (const e of elements || []) {
    const node = renderElement(e, ctx);
    if (node) parent.appendChild(node);
  }
}

function renderElement(e, ctx) {
  if (!e || typeof e !== "object") return null;
  switch (e.tag) {
    case "markdown": case "lark_md": {
      const d = el("div", "lk-md");
      d.innerHTML = markdownHtml(txt(e));
      if (e.text_align) d.style.textAlign = e.text_align;
      return d;
    }
    case "plain_text": return el("div", "lk-md", txt(e));
    case "div": {
      const d = el("div", "lk-md");
      const t = e.text || {};
      if (t.tag === "lark_md") d.innerHTML = markdownHtml(txt(t)); else d.textContent = txt(t);
      return d;
    }
    case "hr": return el("hr", "lk-hr");
    case "column_set": return renderColumns(e, ctx);
    case "button": return renderButton(e, ctx);
    case "select_static": return renderSelect(e, ctx);
    case "multi_select_static": return renderMulti(e, ctx);
    case "input": return renderInput(e, ctx);
    case "checker": return renderChecker(e, ctx);
    case "form": return renderForm(e, ctx);
    case "chart": return renderChart(e);
    case "table": return renderTable(e);
    case "img": {
      const d = el("div", "lk-img", `🖼 ${txt(e.alt) || txt(e.title) || e.img_key || "image"}`);
      d.title = "Images are Lark-hosted (img_key); the sandbox shows a placeholder.";
      return d;
    }
    case "collapsible_panel": {
      const d = el("details", "lk-panel");
      if (e.expanded) d.open = true;
      const sum = el("summary");
      sum.textContent = txt(e.header && e.header.title) || "…";
      d.appendChild(sum);
      renderElements(e.elements, d, ctx);
      return d;
    }
    case "interactive_container": {
      const d = el("div", "lk-container");
      renderElements(e.elements, d, ctx);
      const cb = callbackValue(e);
      d.addEventListener("click", (ev) => {
        if (ev.target.closest("button, select, input, a")) return;
        if (cb) sendAction(ctx.messageId, { tag: "interactive_container", value: cb });
        const url = openUrl(e);
        if (url) window.open(url, "_blank", "noopener");
      });
      return d;
    }
    default: {
      const d = el("div", "lk-unknown", `unsupported element: ${e.tag}`);
      return d;
    }
  }
}

function renderColumns(e, ctx) {
  const row = el("div", "lk-columns");
  const mode = e.flex_mode || "none";
  if (mode === "flow") row.classList.add("flow");
  if (e.horizontal_spacing) row.style.gap = /^\d+px$/.test(e.horizontal_spacing) ? e.horizontal_spacing : "8px";
  if (e.horizontal_align) row.style.justifyContent = { left: "flex-start", center: "center", right: "flex-end" }[e.horizontal_align] || "";
  for (const c of e.columns || []) {
    const col = el("div", "lk-column");
    const w = c.width || "auto";
    if (w === "weighted") col.style.flex = `${c.weight || 1} 1 0`;
    else if (/^\d+px$/.test(w)) col.style.flex = `0 0 ${w}`;
    else col.style.flex = "0 0 auto";
    if (mode === "bisect") col.style.flex = "1 1 0";
    if (mode === "trisect") col.style.flex = "1 1 0";
    if (c.vertical_align === "center") col.classList.add("v-center");
    if (c.vertical_align === "bottom") col.classList.add("v-bottom");
    renderElements(c.elements, col, ctx);
    row.appendChild(col);
  }
  return row;
}

function callbackValue(e) {
  for (const b of e.behaviors || []) if (b.type === "callback") return b.value || {};
  if (e.value && typeof e.value === "object") return e.value; // 1.0 style
  return null;
}
function openUrl(e) {
  for (const b of e.behaviors || []) {
    if (b.type === "open_url") return b.default_url || b.pc_url || b.url;
  }
  return e.url || (e.multi_url && (e.multi_url.pc_url || e.multi_url.url)) || null;
}

function renderButton(e, ctx) {
  const b = el("button", `lk-btn lk-btn-${e.type || "default"}`, txt(e.text));
  b.type = "button";
  b.dataset.testid = "card-button";
  if (e.width === "fill") b.classList.add("w-fill");
  if (e.disabled) { b.disabled = true; if (e.disabled_tips) b.title = txt(e.disabled_tips); }
  if (e.hover_tips) b.title = txt(e.hover_tips);
  const form = ctx.form;
  b.addEventListener("click", async () => {
    if (e.confirm && !(await confirmBox(txt(e.confirm.title), txt(e.confirm.text)))) return;
    if (form && e.form_action_type === "reset") { form.reset(); return; }
    const url = openUrl(e);
    if (url) window.open(url, "_blank", "noopener");
    const cb = callbackValue(e);
    if (form && e.form_action_type === "submit") {
      const values = form.collect();
      if (values === null) { toast({ type: "warning", content: S.lang === "zh_cn" ? "请填写必填项" : "Fill in the required fields" }); return; }
      await sendAction(ctx.messageId, { tag: "button", value: cb || {}, name: e.name, form_value: values }, b);
      return;
    }
    if (cb) await sendAction(ctx.messageId, { tag: "button", value: cb, name: e.name }, b);
  });
  return b;
}

function placeholder(e) { return txt(e.placeholder); }

function renderSelect(e, ctx) {
  const s = el("select", "lk-select");
  s.dataset.testid = "card-select";
  const ph = el("option", null, placeholder(e) || "—");
  ph.value = ""; ph.disabled = true;
  s.appendChild(ph);
  for (const o of e.options || []) {
    const opt = el("option", null, txt(o.text) || o.value);
    opt.value = o.value;
    s.appendChild(opt);
  }
  s.value = e.initial_option || "";
  if (!e.initial_option) ph.selected = true;
  if (e.disabled) s.disabled = true;
  if (ctx.form && e.name) {
    ctx.form.fields.set(e.name, { get: () => s.value || null, required: !!e.required, node: s,
      reset: () => { s.value = e.initial_option || ""; } });
  } else {
    s.addEventListener("change", () => sendAction(ctx.messageId, { tag: "select_static", value: callbackValue(e) || {},
      option: s.value, name: e.name }));
  }
  return s;
}

function renderMulti(e, ctx) {
  const box = el("div", "lk-multi");
  box.dataset.testid = "card-multi-select";
  const initial = new Set(e.selected_values || []);
  const inputs = [];
  for (const o of e.options || []) {
    const lab = el("label");
    const cb = document.createElement("input");
    cb.type = "checkbox"; cb.value = o.value; cb.checked = initial.has(o.value);
    lab.appendChild(cb); lab.appendChild(document.createTextNode(txt(o.text) || o.value));
    box.appendChild(lab); inputs.push(cb);
  }
  if (!inputs.length) box.appendChild(el("span", null, placeholder(e)));
  const values = () => inputs.filter((i) => i.checked).map((i) => i.value);
  if (ctx.form && e.name) {
    ctx.form.fields.set(e.name, { get: () => values(), required: !!e.required, node: box,
      reset: () => inputs.forEach((i) => { i.checked = initial.has(i.value); }) });
  } else {
    box.addEventListener("change", () => sendAction(ctx.messageId, { tag: "multi_select_static",
      value: callbackValue(e) || {}, options: values(), name: e.name }));
  }
  return box;
}

function renderInput(e, ctx) {
  const wrap = el("div", "lk-field");
  if (e.label) wrap.appendChild(el("label", null, txt(e.label)));
  const multiline = e.input_type === "multiline_text";
  const i = document.createElement(multiline ? "textarea" : "input");
  i.className = "lk-input";
  i.dataset.testid = "card-input";
  i.placeholder = placeholder(e);
  if (e.max_length) i.maxLength = e.max_length;
  const initial = e.default_value ? txt(e.i18n_default_value ? { content: e.default_value, i18n_content: e.i18n_default_value } : e.default_value) : "";
  i.value = initial;
  if (e.input_type === "password") i.type = "password";
  if (e.disabled) i.disabled = true;
  wrap.appendChild(i);
  if (ctx.form && e.name) {
    ctx.form.fields.set(e.name, { get: () => i.value, required: !!e.required, node: i, reset: () => { i.value = initial; } });
  } else {
    i.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !multiline) sendAction(ctx.messageId, { tag: "input", value: callbackValue(e) || {},
        input_value: i.value, name: e.name });
    });
  }
  return wrap;
}

function renderChecker(e, ctx) {
  const lab = el("label", "lk-checker");
  const cb = document.createElement("input");
  cb.type = "checkbox"; cb.checked = !!e.checked;
  lab.appendChild(cb);
  const t = el("span", "lk-md"); t.innerHTML = markdownHtml(txt(e.text));
  lab.appendChild(t);
  if (ctx.form && e.name) {
    ctx.form.fields.set(e.name, { get: () => cb.checked, required: false, node: cb, reset: () => { cb.checked = !!e.checked; } });
  } else {
    cb.addEventListener("change", () => sendAction(ctx.messageId, { tag: "checker", value: callbackValue(e) || {},
      checked: cb.checked, name: e.name }));
  }
  return lab;
}

function renderForm(e, ctx) {
  const f = el("form", "lk-form");
  f.dataset.testid = "card-form";
  f.dataset.name = e.name || "";
  f.addEventListener("submit", (ev) => ev.preventDefault());
  const fields = new Map();
  const form = {
    fields,
    collect() {
      const out = {};
      let ok = true;
      for (const [name, fld] of fields) {
        const v = fld.get();
        const empty = v === null || v === "" || (Array.isArray(v) && v.length === 0);
        fld.node.classList.toggle("lk-invalid", fld.required && empty);
        if (fld.required && empty) ok = false;
        if (!empty) out[name] = v;
      }
      return ok ? out : null;
    },
    reset() { for (const fld of fields.values()) fld.reset(); },
  };
  renderElements(e.elements, f, { ...ctx, form });
  return f;
}

// ----- charts (VChart spec → inline SVG) ---------------------------------------------------------------

const SVGNS = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const n = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
  if (text !== undefined) n.textContent = text;
  return n;
}
function field(f) { return Array.isArray(f) ? f[0] : f; }
function chartValues(spec) {
  const data = spec.data;
  if (Array.isArray(data)) return data.flatMap((d) => (d && Array.isArray(d.values) ? d.values : []));
  if (data && Array.isArray(data.values)) return data.values;
  return [];
}
function niceMax(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 1.2, 1.6, 2, 2.4, 3.2, 4, 6, 8, 10]) if (m * p >= v) return m * p; // quarters stay round
  return 10 * p;
}
function short(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toFixed(1)}K`;
  return `${+v.toFixed(1)}`;
}

function renderChart(e) {
  const spec = e.chart_spec || {};
  const wrap = el("div", "lk-chart-wrap");
  const ratio = { "1:1": 1, "2:1": 0.5, "4:3": 0.75, "16:9": 0.5625 }[e.aspect_ratio || "16:9"] || 0.5625;
  const W = 560, H = Math.round(W * ratio);
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "lk-chart", role: "img", "data-type": spec.type || "?" });
  s.dataset.testid = "chart";
  const title = spec.title && spec.title.visible !== false ? (spec.title.text || "") : "";
  const top = title ? 28 : 12;
  if (title) s.appendChild(svg("text", { x: 8, y: 18, "font-size": 13, "font-weight": 600, fill: "#1f2329" }, String(title)));
  const values = chartValues(spec);
  const type = spec.type || "line";
  if (type === "pie") { drawPie(s, spec, values, W, H, top); wrap.appendChild(s); return wrap; }
  const xF = field(spec.xField), yF = field(spec.yField), sF = spec.seriesField;
  const cats = [], series = new Map();
  for (const v of values) {
    const x = String(v[xF]);
    if (!cats.includes(x)) cats.push(x);
    const key = sF ? String(v[sF]) : (yF || "value");
    if (!series.has(key)) series.set(key, new Map());
    series.get(key).set(x, Number(v[yF]) || 0);
  }
  const L = 46, R = 12, B = 26;
  const pw = W - L - R, ph = H - top - B;
  const max = niceMax(Math.max(0, ...[...series.values()].flatMap((m) => [...m.values()])));
  for (let i = 0; i <= 4; i += 1) {
    const y = top + ph - (ph * i) / 4;
    s.appendChild(svg("line", { x1: L, x2: W - R, y1: y, y2: y, stroke: "#eff0f1" }));
    s.appendChild(svg("text", { x: L - 6, y: y + 4, "font-size": 10, fill: "#8f959e", "text-anchor": "end" }, short((max * i) / 4)));
  }
  const n = Math.max(cats.length, 1);
  const band = pw / n;
  const xAt = (i) => (type === "bar" ? L + band * i + band / 2 : L + (n === 1 ? pw / 2 : (pw * i) / (n - 1)));
  const yAt = (v) => top + ph - (ph * v) / max;
  const every = Math.max(1, Math.ceil(n / 8));
  cats.forEach((c, i) => {
    if (i % every === 0 || i === n - 1) {
      s.appendChild(svg("text", { x: xAt(i), y: H - 8, "font-size": 10, fill: "#646a73", "text-anchor": "middle" }, c));
    }
  });
  s.appendChild(svg("line", { x1: L, x2: W - R, y1: top + ph, y2: top + ph, stroke: "#bbbfc4" }));
  const keys = [...series.keys()];
  keys.forEach((key, si) => {
    const colour = CHART_COLOURS[si % CHART_COLOURS.length];
    const m = series.get(key);
    if (type === "bar") {
      const bw = Math.max(2, (band * 0.7) / keys.length);
      cats.forEach((c, i) => {
        const v = m.get(c) || 0;
        const x = L + band * i + band * 0.15 + bw * si;
        s.appendChild(svg("rect", { x, y: yAt(v), width: bw, height: top + ph - yAt(v), fill: colour, rx: 2 }));
      });
    } else {
      const pts = cats.map((c, i) => (m.has(c) ? [xAt(i), yAt(m.get(c))] : null)).filter(Boolean);
      if (type === "area" && pts.length) {
        const d = `M${pts[0][0]},${top + ph} ` + pts.map((p) => `L${p[0]},${p[1]}`).join(" ") + ` L${pts[pts.length - 1][0]},${top + ph} Z`;
        s.appendChild(svg("path", { d, fill: colour, "fill-opacity": 0.15 }));
      }
      s.appendChild(svg("polyline", { points: pts.map((p) => p.join(",")).join(" "), fill: "none", stroke: colour, "stroke-width": 2 }));
      for (const p of pts) s.appendChild(svg("circle", { cx: p[0], cy: p[1], r: 2.5, fill: "#fff", stroke: colour, "stroke-width": 1.5 }));
    }
  });
  wrap.appendChild(s);
  if (keys.length > 1) wrap.appendChild(legend(keys));
  return wrap;
}

function legend(keys) {
  const lg = el("div", "lk-legend");
  keys.forEach((k, i) => {
    const item = el("span");
    const sw = el("i"); sw.style.background = CHART_COLOURS[i % CHART_COLOURS.length];
    item.appendChild(sw); item.appendChild(document.createTextNode(k));
    lg.appendChild(item);
  });
  return lg;
}

function drawPie(s, spec, values, W, H, top) {
  const cF = field(spec.categoryField), vF = field(spec.valueField);
  const total = values.reduce((a, v) => a + (Number(v[vF]) || 0), 0) || 1;
  const r = Math.min(W / 2, H - top) / 2 - 8, cx = W / 3, cy = top + (H - top) / 2;
  let a0 = -Math.PI / 2;
  values.forEach((v, i) => {
    const a1 = a0 + (2 * Math.PI * (Number(v[vF]) || 0)) / total;
    const large = a1 - a0 > Math.PI ? 1 : 0;
    const d = `M${cx},${cy} L${cx + r * Math.cos(a0)},${cy + r * Math.sin(a0)} A${r},${r} 0 ${large} 1 ${cx + r * Math.cos(a1)},${cy + r * Math.sin(a1)} Z`;
    s.appendChild(svg("path", { d, fill: CHART_COLOURS[i % CHART_COLOURS.length] }));
    s.appendChild(svg("text", { x: W * 0.62, y: top + 16 + i * 16, "font-size": 11, fill: "#1f2329" },
      `■ ${v[cF]}: ${short(Number(v[vF]) || 0)}`)).setAttribute("fill", CHART_COLOURS[i % CHART_COLOURS.length]);
    a0 = a1;
  });
}

function renderTable(e) {
  const t = el("table", "lk-table");
  const cols = e.columns || [];
  const head = el("tr");
  for (const c of cols) head.appendChild(el("th", null, txt(c.display_name) || c.name));
  t.appendChild(head);
  for (const row of e.rows || []) {
    const tr = el("tr");
    for (const c of cols) {
      const td = el("td");
      const v = row[c.name];
      if (c.data_type === "lark_md" || c.data_type === "markdown") td.innerHTML = markdownHtml(String(v ?? ""));
      else if (Array.isArray(v)) td.textContent = v.map((x) => (typeof x === "object" ? txt(x) || x.text || "" : x)).join(", ");
      else if (v && typeof v === "object") td.textContent = txt(v);
      else td.textContent = v ?? "";
      tr.appendChild(td);
    }
    t.appendChild(tr);
  }
  return t;
}

// ----- messages ------------------------------------------------------------------------------------------

function timeText(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function renderMessage(m) {
  if (m.kind === "note") {
    const d = el("div", "note");
    d.appendChild(el("span", null, m.text));
    return d;
  }
  const user = m.kind === "user";
  const d = el("div", `msg ${user ? "msg-user" : "msg-bot"}`);
  d.appendChild(el("div", "avatar", user ? "🙂" : "🤖"));
  const bodyBox = el("div", "msg-body");
  const who = el("div", "who", user ? m.sender.name : S.bot.name);
  who.appendChild(el("time", null, timeText(m.time_ms)));
  bodyBox.appendChild(who);
  if (user) {
    const b = el("div", "bubble");
    if (m.mention) { b.appendChild(el("span", "at", `@${S.bot.name} `)); }
    b.appendChild(document.createTextNode(m.text));
    bodyBox.appendChild(b);
  } else {
    if (m.reply_to) bodyBox.appendChild(el("div", "quote", `${ui("replyTo")} ${m.reply_to.sender}: ${m.reply_to.text}`));
    if (m.msg_type === "interactive") {
      bodyBox.appendChild(renderCard(m.content, m.id));
    } else {
      const text = m.content && (m.content.text || JSON.stringify(m.content));
      bodyBox.appendChild(el("div", "bubble", text));
    }
    const meta = el("div", "meta");
    if (m.version > 0) meta.appendChild(el("span", null, `${ui("updated")} ×${m.version} (${m.updated_by.join(", ")})`));
    const jsonBtn = el("button", null, ui("json"));
    jsonBtn.type = "button";
    jsonBtn.addEventListener("click", () => {
      const existing = bodyBox.querySelector("pre.json");
      if (existing) { existing.remove(); return; }
      bodyBox.appendChild(el("pre", "json", JSON.stringify(m.content, null, 2)));
    });
    meta.appendChild(jsonBtn);
    bodyBox.appendChild(meta);
  }
  d.appendChild(bodyBox);
  return d;
}

async function api(path, body) {
  const opts = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const r = await fetch(API + path, opts);
  let data = null;
  try { data = await r.json(); } catch (_) { data = null; }
  if (!r.ok) throw new Error((data && data.error) || `HTTP ${r.status}`);
  return data;
}

let refreshing = null;
async function refresh() {
  if (!S.chat) return;
  if (refreshing) return refreshing;
  const chatId = S.chat.id;
  refreshing = (async () => {
    try {
      const data = await api(`/chats/${encodeURIComponent(chatId)}/messages`);
      if (!S.chat || S.chat.id !== chatId) return;
      applyMessages(data.messages);
    } catch (err) {
      console.warn("poll failed", err);
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

function applyMessages(messages) {
  const box = $("#messages");
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 120;
  let added = false;
  const empty = box.querySelector(".empty");
  if (messages.length && empty) empty.remove();
  if (!messages.length && !empty && !box.children.length) box.appendChild(el("div", "note empty", ui("empty")));
  for (const m of messages) {
    const key = `${m.version}|${S.lang}`;
    const known = S.rendered.get(m.id);
    if (known && known.key === key) continue;
    const node = renderMessage(m);
    node.dataset.testid = "message";
    node.dataset.id = m.id;
    node.dataset.kind = m.kind;
    node.dataset.version = String(m.version);
    if (known) known.node.replaceWith(node);
    else { box.appendChild(node); added = true; }
    S.rendered.set(m.id, { key, node });
  }
  if (added || nearBottom) box.scrollTop = box.scrollHeight;
}

function resetMessages() {
  $("#messages").textContent = "";
  S.rendered.clear();
}

async function burst() {
  // the bot answers in the background: look a few times soon after an action
  for (const wait of [120, 300, 600, 1200]) {
    await new Promise((r) => setTimeout(r, wait));
    await refresh();
  }
}

async function sendAction(messageId, action, button) {
  if (button) button.classList.add("busy");
  try {
    const res = await api(`/chats/${encodeURIComponent(S.chat.id)}/actions`,
      { message_id: messageId, user: S.user.open_id, ...action });
    if (res.toast) toast(res.toast);
    await refresh();
    burst();
  } catch (err) {
    toast({ type: "error", content: String(err.message || err) });
  } finally {
    if (button) button.classList.remove("busy");
  }
}

async function sendText(text) {
  text = text.trim();
  if (!text) return;
  try {
    await api(`/chats/${encodeURIComponent(S.chat.id)}/messages`,
      { text, user: S.user.open_id, mention: S.chat.type === "group" && S.mention });
    await refresh();
    burst();
  } catch (err) {
    toast({ type: "error", content: String(err.message || err) });
  }
}

// ----- toast and confirm ---------------------------------------------------------------------------------

let toastTimer = null;
function toast(t) {
  const box = $("#toast");
  box.className = `toast ${t.type || "info"}`;
  box.dataset.type = t.type || "info";
  box.textContent = txt({ content: t.content, i18n_content: t.i18n });
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, 4000);
}

function confirmBox(title, text) {
  return new Promise((resolve) => {
    const modal = $("#modal");
    $("#modal-title").textContent = title;
    $("#modal-text").textContent = text;
    modal.hidden = false;
    const done = (v) => { modal.hidden = true; $("#modal-ok").onclick = null; $("#modal-cancel").onclick = null; resolve(v); };
    $("#modal-ok").onclick = () => done(true);
    $("#modal-cancel").onclick = () => done(false);
  });
}

// ----- chrome ---------------------------------------------------------------------------------------------

function roleText(u) { return u.role === "owner" ? ui("owner") : ui("member"); }

function drawChrome() {
  document.documentElement.lang = S.lang === "zh_cn" ? "zh-CN" : "en";
  for (const n of document.querySelectorAll("[data-i18n]")) n.textContent = ui(n.dataset.i18n);
  $("#text").placeholder = ui("placeholder");
  for (const b of document.querySelectorAll("#lang button")) b.classList.toggle("on", b.dataset.lang === S.lang);
  const chats = $("#chats");
  chats.textContent = "";
  for (const c of S.chats) {
    const li = el("li", c.id === (S.chat && S.chat.id) ? "on" : "");
    li.dataset.chat = c.id;
    li.appendChild(el("span", null, c.type === "group" ? "👥" : "👤"));
    li.appendChild(el("span", null, c.name));
    li.appendChild(el("span", "kind", ui(c.type)));
    li.addEventListener("click", () => selectChat(c.id));
    chats.appendChild(li);
  }
  const sel = $("#user");
  sel.textContent = "";
  for (const u of S.users) {
    const o = el("option", null, `${u.name} (${roleText(u)})`);
    o.value = u.open_id;
    sel.appendChild(o);
  }
  if (S.user) sel.value = S.user.open_id;
  if (S.chat) {
    $("#chat-name").textContent = S.chat.name;
    $("#chat-sub").textContent = `${ui(S.chat.type)} · ${S.chat.id}`;
    const mention = $("#mention");
    mention.hidden = S.chat.type !== "group";
    mention.textContent = `@${S.bot.name}`;
    mention.classList.toggle("on", S.mention);
  }
  if (S.user) $("#chat-me").textContent = `${ui("you")}: ${S.user.name} (${roleText(S.user)})`;
  const quick = $("#quick");
  quick.textContent = "";
  for (const q of QUICK) {
    const b = el("button", null, q);
    b.type = "button";
    b.dataset.testid = "quick";
    b.addEventListener("click", () => sendText(q));
    quick.appendChild(b);
  }
}

function selectChat(id) {
  S.chat = S.chats.find((c) => c.id === id) || S.chats[0];
  localStorage.setItem("sandbox.chat", S.chat.id);
  resetMessages();
  drawChrome();
  refresh();
}

async function trigger(path, button) {
  button.disabled = true;
  try {
    const res = await api(`/chats/${encodeURIComponent(S.chat.id)}/${path}`, { user: S.user.open_id });
    const msg = path === "digest" ? `Digest: ${res.outcome}`
      : path === "joined" ? `Lark event: ${res.event_type}`
        : `Published in ${res.location_id}; auto-tag poll handled ${res.handled ?? "—"} post(s)`;
    toast({ type: "success", content: msg });
    await refresh();
    burst();
  } catch (err) {
    toast({ type: "error", content: String(err.message || err) });
  } finally {
    button.disabled = false;
  }
}

async function start() {
  const state = await api("/state");
  S.chats = state.chats; S.users = state.users; S.bot = state.bot;
  S.chat = S.chats.find((c) => c.id === localStorage.getItem("sandbox.chat")) || S.chats[0];
  S.user = S.users.find((u) => u.open_id === localStorage.getItem("sandbox.user")) || S.users[0];
  const locs = $("#locations");
  for (const l of state.locations) {
    const li = el("li");
    li.appendChild(document.createTextNode(`${l.name} `));
    li.appendChild(el("code", null, `${l.location_id || l.id} · ${l.via === "private" ? "Private token" : l.via === "oauth" ? "OAuth" : "not connected"}`));
    locs.appendChild(li);
  }
  $("#user").addEventListener("change", (ev) => {
    S.user = S.users.find((u) => u.open_id === ev.target.value) || S.users[0];
    localStorage.setItem("sandbox.user", S.user.open_id);
    drawChrome();
  });
  for (const b of document.querySelectorAll("#lang button")) {
    b.addEventListener("click", () => {
      S.lang = b.dataset.lang;
      localStorage.setItem("sandbox.lang", S.lang);
      resetMessages();
      drawChrome();
      refresh();
    });
  }
  $("#mention").addEventListener("click", () => { S.mention = !S.mention; drawChrome(); });
  $("#composer").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = $("#text");
    const text = input.value;
    input.value = "";
    sendText(text);
  });
  $("#digest").addEventListener("click", (ev) => trigger("digest", ev.currentTarget));
  $("#publish").addEventListener("click", (ev) => trigger("publish", ev.currentTarget));
  $("#joined").addEventListener("click", (ev) => trigger("joined", ev.currentTarget));
  drawChrome();
  await refresh();
  S.polling = setInterval(refresh, 1000);
  document.body.dataset.ready = "1";
}

start().catch((err) => { document.body.textContent = `Console failed to start: ${err}`; });
