// The mail center: accounts, folders and labels on the left, the list, the reading pane.
// Plain ES2020, no framework, no build step. Exposes window.MailApp for compose.js and mass.js
// (the interface in docs/users.md#for-developers; keep it stable).
(function () {
  "use strict";

  const I18N = window.MailI18n;
  const $ = (id) => document.getElementById(id);
  const PAGE_SIZE = 50;
  const POLL_MS = 30000;
  const SYSTEM_FOLDERS = ["inbox", "sent", "drafts", "archive", "spam", "trash"];
  const MOVE_TARGETS = ["inbox", "archive", "spam", "trash"];

  // ---- session: NocoBase keeps it in localStorage (NOCOBASE_TOKEN, or NOCOBASE_<APP>_TOKEN
  // for a sub-application), like the settings page ----
  function appName() {
    const q = new URLSearchParams(location.search).get("__appName");
    if (q) return q;
    const m = location.pathname.match(/^\/apps\/([^/]+)\//);
    return m ? m[1] : "";
  }
  const APP = appName();
  const PREFIX = APP ? "NOCOBASE_" + APP.toUpperCase() + "_" : "NOCOBASE_";
  function session() {
    return {
      token: localStorage.getItem(PREFIX + "TOKEN") || "",
      role: localStorage.getItem(PREFIX + "ROLE") || "",
      locale: localStorage.getItem(PREFIX + "LOCALE") || localStorage.getItem("NOCOBASE_LOCALE") || "",
    };
  }
  // NocoBase's X-Timezone form ("+08:00"): the server dates quoted originals with it.
  function timezoneOffset() {
    const m = -new Date().getTimezoneOffset();
    const a = Math.abs(m);
    const pad = (n) => String(n).padStart(2, "0");
    return (m < 0 ? "-" : "+") + pad(Math.floor(a / 60)) + ":" + pad(a % 60);
  }
  function authHeaders() {
    const s = session();
    const h = { Authorization: "Bearer " + s.token };
    if (s.role) h["X-Role"] = s.role;
    if (APP) h["X-App"] = APP;
    if (s.locale) h["X-Locale"] = s.locale;
    h["X-Timezone"] = timezoneOffset();
    return h;
  }

  let pageConfig = null;
  function loadConfig() {
    if (!pageConfig) {
      pageConfig = fetch("/admin/mail/config")
        .then((r) => (r.ok ? r.json() : { data: {} }))
        .then((b) => b.data || {})
        .catch(() => ({}));
    }
    return pageConfig;
  }

  // Sends the page to the host's sign-in; in development mode (make demo) offers the dev
  // sign-in instead, as the settings page does.
  let signingIn = false;
  function goSignIn(message) {
    if (signingIn) return;
    signingIn = true;
    loadConfig().then((cfg) => {
      if (cfg.signInUrl) $("mc-host-signin").href = cfg.signInUrl;
      if (cfg.devSignIn) {
        $("mc-signin-message").textContent = message || t("signin.message");
        $("mc-dev-signin").classList.remove("hidden");
        $("mc-app").classList.add("hidden");
        $("mc-signin").classList.remove("hidden");
      } else {
        location.replace(cfg.signInUrl || "/signin?redirect=%2Fadmin%2Fmail");
      }
    });
  }

  function toQuery(params) {
    const q = new URLSearchParams();
    Object.entries(params || {}).forEach(([k, v]) => {
      if (v === undefined || v === null) return;
      if (Array.isArray(v)) v.forEach((x) => q.append(k.endsWith("[]") ? k : k + "[]", String(x)));
      else if (typeof v === "object") q.append(k, JSON.stringify(v));
      else q.append(k, String(v));
    });
    const s = q.toString();
    return s ? "?" + s : "";
  }

  function handle(res, action) {
    return res
      .json()
      .catch(() => ({}))
      .then((body) => {
        if (res.ok) return action === "list" ? { data: body.data, meta: body.meta || {} } : body.data;
        const e0 = (body.errors && body.errors[0]) || {};
        const err = new Error(e0.message || t("error.http", { status: res.status }));
        err.status = res.status;
        err.code = e0.code || "HTTP_" + res.status;
        if (res.status === 401) {
          goSignIn(err.code === "ROLE_NOT_FOUND_FOR_USER" ? t("signin.role") : t("signin.expired"));
        }
        throw err;
      });
  }

  // POST /api/<resource>:<action>?params with JSON values. Resolves body.data; a list resolves
  // {data, meta}. Rejects an Error carrying the server's status, code and message.
  function api(resource, action, { params, values } = {}) {
    const headers = Object.assign({ "Content-Type": "application/json" }, authHeaders());
    return fetch("/api/" + resource + ":" + action + toQuery(params), {
      method: "POST",
      headers,
      body: JSON.stringify(values || {}),
    }).then((res) => handle(res, action));
  }

  function apiForm(resource, action, formData, { params } = {}) {
    return fetch("/api/" + resource + ":" + action + toQuery(params), {
      method: "POST",
      headers: authHeaders(),
      body: formData,
    }).then((res) => handle(res, action));
  }

  // Bytes with the user's token (downloads and cid: images cannot carry a header otherwise).
  function fetchBlob(url) {
    return fetch(url, { headers: authHeaders() }).then((res) => {
      if (res.ok) return res.blob();
      return handle(res, "download");
    });
  }

  // ---- small helpers ----
  function t(key, vars) {
    return I18N.t(key, vars);
  }
  function escape(s) {
    return String(s === undefined || s === null ? "" : s)
      .replace(/&/g, "&amp;")
      .replace(/</g, "&lt;")
      .replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;")
      .replace(/'/g, "&#39;");
  }
  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (v === undefined || v === null || v === false) return;
      if (k === "text") e.textContent = v;
      else if (k === "className" || k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(e.dataset, v);
      else e.setAttribute(k, v === true ? "" : v);
    });
    [].concat(children || []).forEach((c) => c !== null && c !== undefined && e.appendChild(typeof c === "string" ? document.createTextNode(c) : c));
    return e;
  }
  function toast(message, kind) {
    const box = el("div", { className: "mc-toast " + (kind === "error" ? "error" : "info"), role: kind === "error" ? "alert" : "status", text: message });
    $("mc-toasts").appendChild(box);
    setTimeout(() => box.remove(), kind === "error" ? 8000 : 4000);
  }
  function fail(err) {
    if (err && err.status === 401) return;
    toast((err && err.message) || String(err), "error");
  }
  function formatSize(n) {
    if (n < 1024) return t("size.bytes", { n });
    if (n < 1024 * 1024) return t("size.kb", { n: (n / 1024).toFixed(n < 10240 ? 1 : 0) });
    return t("size.mb", { n: (n / 1024 / 1024).toFixed(1) });
  }
  function formatDate(iso, long) {
    if (!iso) return "";
    const d = new Date(iso);
    const now = new Date();
    const loc = I18N.locale;
    if (long) return d.toLocaleString(loc);
    if (d.toDateString() === now.toDateString()) return d.toLocaleTimeString(loc, { hour: "2-digit", minute: "2-digit" });
    if (d.getFullYear() === now.getFullYear()) return d.toLocaleDateString(loc, { month: "short", day: "numeric" });
    return d.toLocaleDateString(loc);
  }
  function ago(iso) {
    if (!iso) return t("sync.never");
    const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
    if (s < 60) return t("sync.justNow");
    if (s < 3600) return t("sync.minutes", { n: Math.round(s / 60) });
    if (s < 86400) return t("sync.hours", { n: Math.round(s / 3600) });
    return formatDate(iso, true);
  }
  function person(p) {
    if (!p) return "";
    return p.name || p.address || "";
  }
  function people(list) {
    return (list || []).map((p) => (p.name ? p.name + " <" + p.address + ">" : p.address)).join(", ");
  }

  // ---- state ----
  const state = {
    accounts: [],
    accountId: null, // null: every mailbox
    folder: "inbox", // null when a label is chosen
    labels: [],
    labelId: null,
    counts: null, // the last mailMessages:unreadCount answer
    search: "",
    filters: { unread: false, starred: false, todo: false, hasAttachments: false, dateFrom: "", dateTo: "" },
    items: [], // rows in the list (threads, or drafts in the drafts folder)
    page: 1,
    totalPage: 0,
    cursor: -1,
    checked: new Set(),
    current: null, // the full message open in the reading pane
    thread: [],
  };
  let listSeq = 0;

  // ---- keyboard ----
  const keys = new Map();
  function onKey(key, handler) {
    keys.set(key, handler);
  }
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const target = e.target;
    const typing = target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
    if (typing) {
      if (e.key === "Escape" && target.id === "mc-search") target.blur();
      return;
    }
    if ($("mc-app").classList.contains("hidden")) return;
    // A dialog of compose or mass mailing owns the keyboard while it is open.
    if (document.querySelector("#compose-root .cp-open, #mass-root .mm-open, [aria-modal='true']")) return;
    const handler = keys.get(e.key);
    if (handler) {
      e.preventDefault();
      handler(e);
    }
  });

  // ---- accounts, counts, labels ----
  function loadAccounts() {
    return api("mailAccounts", "list", { params: { pageSize: 200 } }).then((r) => {
      state.accounts = r.data || [];
      if (state.accountId && !state.accounts.some((a) => a.id === state.accountId)) state.accountId = null;
      renderAccounts();
    });
  }

  function loadCounts() {
    return api("mailMessages", "unreadCount").then((d) => {
      state.counts = d;
      renderAccounts();
      renderFolders();
      renderLabels();
      const badge = $("mc-total-unread");
      badge.textContent = d.total > 0 ? String(d.total) : "";
      badge.classList.toggle("hidden", !(d.total > 0));
      document.title = (d.total > 0 ? "(" + d.total + ") " : "") + t("app.title");
    });
  }

  function loadLabels() {
    return api("mailMessageLabels", "list", { params: { pageSize: 200 } }).then((r) => {
      state.labels = r.data || [];
      renderLabels();
    });
  }

  function accountCounts(accountId) {
    return ((state.counts && state.counts.accounts) || []).find((a) => a.accountId === accountId);
  }

  function folderUnread(folder) {
    const list = ((state.counts && state.counts.accounts) || []).filter((a) => !state.accountId || a.accountId === state.accountId);
    return list.reduce((n, a) => n + ((a.folders && a.folders[folder]) || 0), 0);
  }

  function countBadge(n, id) {
    return el("span", { className: "mc-count" + (n > 0 ? "" : " zero"), id, text: n > 0 ? String(n) : "" });
  }

  function renderAccounts() {
    const ul = $("mc-accounts");
    ul.textContent = "";
    const allUnread = state.counts ? state.counts.total : 0;
    ul.appendChild(
      el("li", { className: "mc-nav-item" + (state.accountId === null ? " active" : ""), id: "mc-account-all" }, [
        el("a", { href: "#", onclick: (e) => { e.preventDefault(); selectAccount(null); } }, [
          el("span", { className: "mc-nav-name", text: t("nav.allAccounts") }),
          countBadge(allUnread),
        ]),
      ])
    );
    state.accounts.forEach((a) => {
      const c = accountCounts(a.id);
      const status =
        a.status === "reauth_required"
          ? el("span", { className: "mc-tag warn", text: t("account.reauth") })
          : el("span", { className: "mc-muted mc-sync-time", dataset: { at: a.lastSyncAt || "" }, text: t("sync.last", { when: ago(a.lastSyncAt) }) });
      const actions = el("div", { className: "mc-account-actions" }, [
        a.status === "reauth_required"
          ? el("button", { type: "button", className: "mc-relink", text: t("account.relink"), onclick: () => relink(a) })
          : null,
        el("button", { type: "button", className: "mc-sync", text: t("sync.now"), onclick: (e) => syncNow(a, e.currentTarget) }),
      ]);
      ul.appendChild(
        el("li", { className: "mc-nav-item mc-account" + (state.accountId === a.id ? " active" : ""), id: "mc-account-" + a.id, dataset: { id: a.id, email: a.email, status: a.status } }, [
          el("a", { href: "#", title: a.email, onclick: (e) => { e.preventDefault(); selectAccount(a.id); } }, [
            el("span", { className: "mc-nav-name", text: a.email }),
            countBadge(c ? c.unread : 0),
          ]),
          el("div", { className: "mc-account-state" }, [status]),
          a.lastError && a.status !== "reauth_required" ? el("div", { className: "mc-error-text", text: a.lastError }) : null,
          actions,
        ])
      );
    });
    if (!state.accounts.length) {
      ul.appendChild(el("li", { className: "mc-muted mc-empty-nav" }, [t("account.none") + " ", el("a", { href: "/admin/settings/mail", text: t("account.link") })]));
    }
  }

  function userFolders() {
    const out = new Map();
    ((state.counts && state.counts.accounts) || [])
      .filter((a) => !state.accountId || a.accountId === state.accountId)
      .forEach((a) => Object.entries(a.folderNames || {}).forEach(([f, name]) => out.set(f, name)));
    return Array.from(out.entries()).sort((x, y) => x[1].localeCompare(y[1]));
  }

  function renderFolders() {
    const ul = $("mc-folders");
    ul.textContent = "";
    const item = (folder, name) =>
      el("li", { className: "mc-nav-item" + (state.folder === folder ? " active" : ""), id: "mc-folder-" + folder.replace(/[^a-zA-Z0-9_-]/g, "_"), dataset: { folder } }, [
        el("a", { href: "#", onclick: (e) => { e.preventDefault(); selectFolder(folder); } }, [
          el("span", { className: "mc-nav-name", text: name }),
          countBadge(folder === "drafts" ? 0 : folderUnread(folder), "mc-count-" + folder.replace(/[^a-zA-Z0-9_-]/g, "_")),
        ]),
      ]);
    SYSTEM_FOLDERS.forEach((f) => ul.appendChild(item(f, t("folder." + f))));
    userFolders().forEach(([f, name]) => ul.appendChild(item(f, name)));
  }

  function renderLabels() {
    const ul = $("mc-labels");
    ul.textContent = "";
    const unread = (state.counts && state.counts.labels) || {};
    state.labels.forEach((l) => {
      ul.appendChild(
        el("li", { className: "mc-nav-item" + (state.labelId === l.id ? " active" : ""), id: "mc-label-" + l.id, dataset: { id: l.id } }, [
          el("a", { href: "#", onclick: (e) => { e.preventDefault(); selectLabel(l.id); } }, [
            el("span", { className: "mc-dot", dataset: { color: l.color || "" } }),
            el("span", { className: "mc-nav-name", text: l.name }),
            countBadge(unread[l.id] || 0),
          ]),
        ])
      );
    });
  }

  function selectAccount(id) {
    state.accountId = id;
    closeNavOnNarrow();
    renderAccounts();
    renderFolders();
    loadList();
  }
  function selectFolder(folder) {
    state.folder = folder;
    state.labelId = null;
    closeNavOnNarrow();
    renderFolders();
    renderLabels();
    loadList();
  }
  function selectLabel(id) {
    state.labelId = id;
    state.folder = null;
    closeNavOnNarrow();
    renderFolders();
    renderLabels();
    loadList();
  }

  function syncNow(a, button) {
    if (button) button.disabled = true;
    toast(t("sync.started", { email: a.email }));
    return api("mailAccounts", "sync", { params: { filterByTk: a.id }, values: { wait: true } })
      .then((d) => {
        if (d && d.error) toast(t("sync.failed", { email: a.email, message: d.error.message || d.error.kind }), "error");
        else toast(t("sync.done", { email: a.email }));
        return refresh();
      })
      .catch((err) => {
        if (err.code === "REAUTH_REQUIRED") loadAccounts();
        fail(err);
      })
      .finally(() => {
        if (button) button.disabled = false;
      });
  }

  // Same popup flow as the settings page: open the window in the click, then point it at the
  // provider; the callback page reports by postMessage and localStorage.
  function relink(a) {
    const popup = window.open("about:blank", "email-manager-oauth", "width=520,height=680");
    api("mailAccounts", "authorize", { values: { provider: a.provider } })
      .then((d) => {
        if (popup) popup.location.href = d.url;
        else location.href = d.url;
        toast(t("account.relinkStarted"));
      })
      .catch((err) => {
        if (popup) popup.close();
        fail(err);
      });
  }
  function onOAuthResult(result) {
    if (!result || result.type !== "email-manager:oauth") return;
    if (result.ok) toast(t("account.linked", { email: result.email || "" }));
    else toast(t("account.linkFailed", { reason: result.reason || "" }), "error");
    refresh();
  }
  window.addEventListener("message", (e) => {
    if (e.origin === location.origin) onOAuthResult(e.data);
  });
  window.addEventListener("storage", (e) => {
    if (e.key === "email-manager:oauth" && e.newValue) {
      try {
        onOAuthResult(JSON.parse(e.newValue));
      } catch (x) {
        /* not ours */
      }
    }
  });

  // ---- the list ----
  function listFilter() {
    const f = {};
    if (state.accountId) f.accountId = state.accountId;
    if (state.folder) f.folder = state.folder;
    if (state.labelId) f.labels = { $in: [state.labelId] };
    const q = state.filters;
    if (q.unread) f.unread = true;
    if (q.starred) f.starred = true;
    if (q.todo) f.todo = true;
    if (q.hasAttachments) f.hasAttachments = true;
    if (q.dateFrom && q.dateTo) f.date = { $dateBetween: [q.dateFrom, q.dateTo] };
    else if (q.dateFrom) f.date = { $dateNotBefore: q.dateFrom };
    else if (q.dateTo) f.date = { $dateNotAfter: q.dateTo };
    return f;
  }

  // mode: undefined/false (a new list: page 1, cursor and ticks reset), true (append the next
  // page), "keep" (the same list after a change: as many rows as loaded, cursor and ticks kept).
  let listLoading = false;
  function loadList(mode) {
    const seq = ++listSeq;
    const append = mode === true;
    const keep = mode === "keep";
    const keptId = keep && state.items[state.cursor] ? state.items[state.cursor].id : null;
    if (!append && !keep) {
      state.page = 1;
      state.checked.clear();
      $("mc-select-all").checked = false;
    }
    const page = keep ? 1 : state.page;
    const pageSize = keep ? Math.min(200, PAGE_SIZE * state.page) : PAGE_SIZE;
    const drafts = state.folder === "drafts" && !state.search;
    const req = drafts
      ? api("mailDrafts", "list", { params: { accountId: state.accountId || undefined, page, pageSize } })
      : api("mailMessages", "list", {
          params: {
            filter: listFilter(),
            search: state.search || undefined,
            groupBy: "thread",
            sort: "-date",
            appends: "labels",
            page,
            pageSize,
          },
        });
    listLoading = true;
    $("mc-list").setAttribute("aria-busy", "true");
    return req
      .then((r) => {
        if (seq !== listSeq) return;
        const rows = (r.data || []).map((x) => (drafts ? Object.assign({ _draft: true }, x) : x));
        state.items = append ? state.items.concat(rows) : rows;
        const count = r.meta.count || 0;
        // An estimated count (a broad search on PostgreSQL) may be short: a full page means
        // there is another one to load.
        const estimated = r.meta.countExact === false;
        state.totalPage = estimated
          ? state.page + (rows.length === pageSize ? 1 : 0)
          : Math.ceil(count / PAGE_SIZE);
        const label = drafts ? "list.countDrafts" : estimated ? "list.countAbout" : "list.count";
        $("mc-list-count").textContent = t(label, { n: count });
        if (keep) {
          const ids = new Set(state.items.map((x) => x.id));
          state.checked.forEach((id) => ids.has(id) || state.checked.delete(id));
          const at = state.items.findIndex((x) => x.id === keptId);
          state.cursor = !state.items.length ? -1 : at >= 0 ? at : Math.max(0, Math.min(state.cursor, state.items.length - 1));
        } else if (!append) state.cursor = state.items.length ? 0 : -1;
        renderList();
        highlightOpen();
      })
      .catch(fail)
      .finally(() => {
        if (seq === listSeq) {
          listLoading = false;
          $("mc-list").removeAttribute("aria-busy");
        }
      });
  }

  // Scrolling near the end of the list loads the next page (the button does the same).
  function loadMoreIfNeeded() {
    const ul = $("mc-list");
    if (listLoading || state.page >= state.totalPage) return;
    if (ul.scrollTop + ul.clientHeight >= ul.scrollHeight - 200) {
      state.page += 1;
      loadList(true);
    }
  }

  function renderList() {
    const ul = $("mc-list");
    ul.textContent = "";
    if (!state.items.length) {
      ul.appendChild(el("li", { className: "mc-empty", id: "mc-list-empty", text: state.search ? t("list.noMatch") : t("list.empty") }));
    }
    state.items.forEach((m, i) => ul.appendChild(m._draft ? draftRow(m, i) : messageRow(m, i)));
    $("mc-more").classList.toggle("hidden", state.page >= state.totalPage);
  }

  function messageRow(m, i) {
    const unread = m.threadUnread > 0 || m.unread;
    const sender = state.folder === "sent" ? t("list.toPrefix", { who: (m.to || []).map(person).join(", ") }) : person(m.from);
    const marks = el("span", { className: "mc-marks" }, [
      m.hasAttachments ? el("span", { className: "mc-mark mc-attach", title: t("mark.attachment"), "aria-label": t("mark.attachment") }) : null,
      m.todo ? el("span", { className: "mc-mark mc-todo", title: t("mark.todo"), text: "\u2611" }) : null,
      m.starred ? el("span", { className: "mc-mark mc-star", title: t("mark.starred"), text: "\u2605" }) : null,
    ]);
    const labels = el(
      "span",
      { className: "mc-row-labels" },
      (m.labels || []).map((l) => el("span", { className: "mc-label-chip", dataset: { color: l.color || "" }, text: l.name }))
    );
    const check = el("input", {
      type: "checkbox",
      className: "mc-check",
      "aria-label": t("bulk.select"),
      onclick: (e) => e.stopPropagation(),
      onchange: (e) => {
        if (e.target.checked) state.checked.add(m.id);
        else state.checked.delete(m.id);
      },
    });
    check.checked = state.checked.has(m.id);
    return el(
      "li",
      {
        className: "mc-row" + (unread ? " unread" : "") + (i === state.cursor ? " cursor" : "") + (state.current && state.current.threadId === m.threadId && state.current.accountId === m.accountId ? " open" : ""),
        id: "mc-row-" + m.id,
        role: "option",
        dataset: { id: m.id, threadId: m.threadId, unread: unread ? "true" : "false" },
        onclick: () => {
          state.cursor = i;
          openRow(m);
        },
      },
      [
        check,
        el("span", { className: "mc-from", text: sender || t("list.noSender") }),
        m.threadCount > 1 ? el("span", { className: "mc-thread-count", title: t("list.threadCount", { n: m.threadCount }), text: String(m.threadCount) }) : null,
        el("span", { className: "mc-date", title: formatDate(m.date, true), text: formatDate(m.date) }),
        el("div", { className: "mc-line2" }, [
          el("span", { className: "mc-subject", text: m.subject || t("list.noSubject") }),
          el("span", { className: "mc-snippet", text: m.snippet ? " \u2014 " + m.snippet : "" }),
        ]),
        el("div", { className: "mc-line3" }, [labels, marks]),
      ]
    );
  }

  function draftRow(d, i) {
    const to = (d.to || []).join(", ");
    return el(
      "li",
      {
        className: "mc-row mc-draft-row" + (i === state.cursor ? " cursor" : ""),
        id: "mc-draft-" + d.id,
        dataset: { draftId: d.id },
        onclick: () => {
          state.cursor = i;
          openRow(d);
        },
      },
      [
        el("span", { className: "mc-from", text: to ? t("list.toPrefix", { who: to }) : t("list.noRecipients") }),
        el("span", { className: "mc-date", text: formatDate(d.updatedAt) }),
        el("div", { className: "mc-line2" }, [
          el("span", { className: "mc-tag", text: t("list.draft") }),
          el("span", { className: "mc-subject", text: " " + (d.subject || t("list.noSubject")) }),
        ]),
      ]
    );
  }

  function openRow(row) {
    if (row._draft) {
      if (window.MailCompose && window.MailCompose.openDraft) {
        api("mailDrafts", "get", { params: { filterByTk: row.id } })
          .then((d) => window.MailCompose.openDraft(d))
          .catch(fail);
      } else toast(t("compose.unavailable"), "error");
      return;
    }
    openMessage(row.id);
  }

  function moveCursor(delta) {
    if (!state.items.length) return;
    state.cursor = Math.min(state.items.length - 1, Math.max(0, state.cursor + delta));
    document.querySelectorAll("#mc-list .mc-row").forEach((r, i) => r.classList.toggle("cursor", i === state.cursor));
    const row = document.querySelectorAll("#mc-list .mc-row")[state.cursor];
    if (row) row.scrollIntoView({ block: "nearest" });
  }

  // ---- reading ----
  let openSeq = 0;
  function openMessage(id) {
    const seq = ++openSeq;
    document.body.classList.add("mc-reading");
    return api("mailMessages", "get", { params: { filterByTk: id, appends: "labels,notes" } })
      .then((m) => {
        if (seq !== openSeq) return null;
        state.current = m;
        return Promise.all([
          api("mailMessages", "list", {
            params: { filter: { accountId: m.accountId, threadId: m.threadId }, sort: "date", pageSize: 100, fields: ["id", "from", "to", "date", "snippet", "unread", "subject"] },
          }).catch(() => ({ data: [] })),
        ]).then(([thread]) => {
          if (seq !== openSeq) return null;
          state.thread = thread.data || [];
          renderReader();
          highlightOpen();
          if (m.unread) return setFlags([m.id], { unread: false }, { quiet: true });
          return null;
        });
      })
      .catch(fail);
  }

  function highlightOpen() {
    const m = state.current;
    document.querySelectorAll("#mc-list .mc-row").forEach((r) => {
      const row = state.items.find((x) => String(x.id) === r.dataset.id);
      r.classList.toggle("open", !!(m && row && row.threadId === m.threadId && row.accountId === m.accountId));
    });
  }

  function closeReader() {
    state.current = null;
    state.thread = [];
    document.body.classList.remove("mc-reading");
    $("mc-reader-content").classList.add("hidden");
    $("mc-reader-content").textContent = "";
    $("mc-reader-empty").classList.remove("hidden");
    highlightOpen();
  }

  function button(id, key, onclick, extra) {
    return el("button", Object.assign({ type: "button", id, text: t(key), onclick }, extra || {}));
  }

  function composeWith(mode) {
    const m = state.current;
    if (mode !== "new" && !m) return;
    if (window.MailCompose && window.MailCompose.open) window.MailCompose.open({ mode, message: mode === "new" ? null : m });
    else toast(t("compose.unavailable"), "error");
  }

  function renderReader() {
    const m = state.current;
    const box = $("mc-reader-content");
    box.textContent = "";
    $("mc-reader-empty").classList.add("hidden");
    box.classList.remove("hidden");

    const folderOptions = MOVE_TARGETS.concat(userFolders().map(([f]) => f))
      .filter((f) => f !== m.folder)
      .map((f) => el("option", { value: f, text: f.startsWith("user:") ? (userFolders().find(([x]) => x === f) || [f, f])[1] : t("folder." + f) }));
    const move = el("select", { id: "mc-move", "aria-label": t("action.move"), onchange: (e) => { if (e.target.value) moveTo([m.id], e.target.value); } }, [
      el("option", { value: "", text: t("action.moveTo") }),
      ...folderOptions,
    ]);

    const toolbar = el("div", { className: "mc-reader-toolbar" }, [
      button("mc-back", "action.back", closeReader, { className: "mc-narrow-only" }),
      button("mc-reply", "action.reply", () => composeWith("reply")),
      button("mc-reply-all", "action.replyAll", () => composeWith("replyAll")),
      button("mc-forward", "action.forward", () => composeWith("forward")),
      button("mc-archive", "action.archive", () => moveTo([m.id], "archive")),
      button("mc-trash", "action.trash", () => trash([m.id])),
      button("mc-toggle-unread", m.unread ? "action.markRead" : "action.markUnread", () => setFlags([m.id], { unread: !m.unread })),
      button("mc-star", m.starred ? "action.unstar" : "action.star", () => setFlags([m.id], { starred: !m.starred })),
      move,
    ]);

    const thread =
      state.thread.length > 1
        ? el("div", { className: "mc-thread", id: "mc-thread" }, [
            el("div", { className: "mc-muted", text: t("reader.threadCount", { n: state.thread.length }) }),
            el(
              "ol",
              {},
              state.thread.map((x) =>
                el("li", { className: "mc-thread-item" + (x.id === m.id ? " current" : "") + (x.unread ? " unread" : ""), dataset: { id: x.id } }, [
                  el("a", { href: "#", onclick: (e) => { e.preventDefault(); openMessage(x.id); } }, [
                    el("span", { className: "mc-from", text: person(x.from) }),
                    " ",
                    el("span", { className: "mc-muted", text: formatDate(x.date) + " \u2014 " + (x.snippet || "") }),
                  ]),
                ])
              )
            ),
          ])
        : null;

    const head = el("div", { className: "mc-reader-head" }, [
      el("h2", { id: "mc-subject", text: m.subject || t("list.noSubject") }),
      el("div", { className: "mc-meta" }, [
        el("div", {}, [el("b", { text: t("reader.from") + " " }), el("span", { id: "mc-from", text: people([m.from]) })]),
        el("div", {}, [el("b", { text: t("reader.to") + " " }), el("span", { text: people(m.to) })]),
        m.cc && m.cc.length ? el("div", {}, [el("b", { text: t("reader.cc") + " " }), el("span", { text: people(m.cc) })]) : null,
        el("div", { className: "mc-muted", text: formatDate(m.date, true) }),
      ]),
    ]);

    const images = m.remoteImagesBlocked
      ? el("div", { className: "mc-banner", id: "mc-images-banner" }, [
          el("span", { text: t("reader.imagesBlocked") + " " }),
          button("mc-show-images", "reader.showImages", () => showImages(m.id)),
        ])
      : null;

    const frame = el("iframe", {
      id: "mc-body-frame",
      className: "mc-body-frame",
      title: t("reader.bodyTitle"),
      // No allow-scripts and no allow-same-origin: the message runs nothing and reaches
      // nothing of this page; links may open a new tab outside the sandbox.
      sandbox: "allow-popups allow-popups-to-escape-sandbox",
      referrerpolicy: "no-referrer",
    });
    setBody(frame, m);

    const attachments = (m.attachments || []).filter((a) => !a.inline);
    const files = attachments.length
      ? el("div", { className: "mc-attachments", id: "mc-attachments" }, [
          el("h4", { text: t("reader.attachments", { n: attachments.length }) }),
          el(
            "ul",
            {},
            attachments.map((a) =>
              el("li", { className: "mc-attachment", dataset: { id: a.id } }, [
                el("a", { href: "#", className: "mc-download", dataset: { id: a.id }, onclick: (e) => { e.preventDefault(); download(a); } }, [a.filename || t("reader.unnamed")]),
                el("span", { className: "mc-muted", text: " " + formatSize(a.size) }),
              ])
            )
          ),
        ])
      : null;

    box.append(toolbar, head, thread || "", images || "", frame, files || "", organiser(m));
  }

  // The message body in a sandboxed srcdoc frame. cid: images point at the download action,
  // which needs the token: they are fetched here and inlined as data: URLs.
  function setBody(frame, m) {
    const base = "<base target=\"_blank\"><meta name=\"referrer\" content=\"no-referrer\"><style>body{font:14px/1.5 -apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,sans-serif;margin:8px;color:#1f1f1f;word-wrap:break-word}img{max-width:100%;height:auto}pre{white-space:pre-wrap}</style>";
    if (m.html === null || m.html === undefined) {
      frame.srcdoc = base + "<pre>" + escape(m.textBody || "") + "</pre>";
      return;
    }
    const doc = new DOMParser().parseFromString(m.html, "text/html");
    const imgs = Array.from(doc.querySelectorAll("img[src^='/api/mailAttachments:download']"));
    const render = () => {
      frame.srcdoc = base + doc.body.innerHTML;
    };
    if (!imgs.length) return render();
    Promise.all(
      imgs.map((img) =>
        fetchBlob(img.getAttribute("src"))
          .then((blob) => new Promise((resolve) => {
            const r = new FileReader();
            r.onload = () => resolve(r.result);
            r.onerror = () => resolve("");
            r.readAsDataURL(blob);
          }))
          .then((url) => {
            if (url && /^data:image\//.test(url)) img.setAttribute("src", url);
            else img.removeAttribute("src");
          })
          .catch(() => img.removeAttribute("src"))
      )
    ).then(render);
  }

  function showImages(id) {
    return api("mailMessages", "get", { params: { filterByTk: id, allowRemoteImages: true, appends: "labels,notes" } })
      .then((m) => {
        if (!state.current || state.current.id !== id) return;
        m.remoteImagesBlocked = false;
        state.current = m;
        renderReader();
      })
      .catch(fail);
  }

  function download(a) {
    return fetchBlob(a.url)
      .then((blob) => {
        const url = URL.createObjectURL(blob);
        const link = el("a", { href: url, download: a.filename || "attachment", className: "hidden" });
        document.body.appendChild(link);
        link.click();
        link.remove();
        setTimeout(() => URL.revokeObjectURL(url), 60000);
      })
      .catch(fail);
  }

  // Labels, to-do and notes of the open message.
  function organiser(m) {
    const labelIds = new Set((m.labels || []).map((l) => l.id));
    const chips = el(
      "div",
      { className: "mc-label-list", id: "mc-message-labels" },
      (m.labels || []).map((l) =>
        el("span", { className: "mc-label-chip", dataset: { id: l.id, color: l.color || "" } }, [
          l.name,
          el("button", { type: "button", className: "mc-chip-x", title: t("label.remove"), "aria-label": t("label.remove") + " " + l.name, text: "\u00d7", onclick: () => changeLabels(m.id, { removeLabels: [l.id] }) }),
        ])
      )
    );
    const add = el(
      "select",
      { id: "mc-add-label", "aria-label": t("label.add"), onchange: (e) => { if (e.target.value) changeLabels(m.id, { addLabels: [Number(e.target.value)] }); } },
      [el("option", { value: "", text: t("label.add") }), ...state.labels.filter((l) => !labelIds.has(l.id)).map((l) => el("option", { value: l.id, text: l.name }))]
    );

    const todo = el("input", { type: "checkbox", id: "mc-todo" });
    todo.checked = !!m.todo;
    todo.addEventListener("change", () => setTodo(m.id, { todo: todo.checked }));
    const due = el("input", { type: "date", id: "mc-todo-due", value: m.todoDueAt ? m.todoDueAt.slice(0, 10) : "" });
    due.disabled = !m.todo;
    due.addEventListener("change", () => setTodo(m.id, { todoDueAt: due.value || null }));

    const notes = el(
      "ul",
      { className: "mc-notes", id: "mc-notes" },
      (m.notes || []).map((n) => el("li", { className: "mc-note", dataset: { id: n.id } }, [el("div", { text: n.content }), el("div", { className: "mc-muted", text: formatDate(n.createdAt, true) })]))
    );
    const noteText = el("textarea", { id: "mc-note-text", rows: "2", placeholder: t("note.placeholder") });
    const noteForm = el("form", { className: "mc-note-form", id: "mc-note-form" }, [noteText, el("button", { type: "submit", id: "mc-note-add", text: t("note.add") })]);
    noteForm.addEventListener("submit", (e) => {
      e.preventDefault();
      const content = noteText.value.trim();
      if (!content) return;
      api("mailMessageNotes", "create", { values: { messageId: m.id, content } })
        .then((n) => {
          if (state.current && state.current.id === m.id) {
            state.current.notes = (state.current.notes || []).concat([n]);
            renderReader();
          }
          toast(t("note.added"));
        })
        .catch(fail);
    });

    return el("div", { className: "mc-organiser" }, [
      el("section", {}, [el("h4", { text: t("reader.labels") }), chips, add]),
      el("section", {}, [el("h4", { text: t("reader.todo") }), el("label", { className: "mc-check-label" }, [todo, " ", t("todo.open")]), el("label", { className: "mc-check-label" }, [t("todo.due") + " ", due])]),
      el("section", {}, [el("h4", { text: t("reader.notes") }), notes, noteForm]),
    ]);
  }

  // ---- changes ----
  function replaceRows(updated) {
    (Array.isArray(updated) ? updated : [updated]).forEach((u) => {
      if (!u) return;
      if (state.current && state.current.id === u.id) Object.assign(state.current, u);
    });
  }

  function setFlags(ids, values, opts) {
    const many = ids.length > 1;
    return api("mailMessages", "update", { params: many ? { "filterByTk[]": ids } : { filterByTk: ids[0] }, values })
      .then((d) => {
        replaceRows(d);
        if (state.current && ids.includes(state.current.id) && !(opts && opts.quiet)) renderReader();
        return Promise.all([loadCounts(), loadList("keep")]);
      })
      .then(() => highlightOpen())
      .catch(fail);
  }

  function moveTo(ids, folder) {
    return api("mailMessages", "update", { params: ids.length > 1 ? { "filterByTk[]": ids } : { filterByTk: ids[0] }, values: { folder } })
      .then(() => {
        toast(t("action.moved", { n: ids.length, folder: folder.startsWith("user:") ? folder : t("folder." + folder) }));
        afterRemoval(ids);
      })
      .catch(fail);
  }

  function trash(ids) {
    return api("mailMessages", "destroy", { params: ids.length > 1 ? { "filterByTk[]": ids } : { filterByTk: ids[0] } })
      .then(() => {
        toast(t("action.trashed", { n: ids.length }));
        afterRemoval(ids);
      })
      .catch(fail);
  }

  function afterRemoval(ids) {
    if (state.current && ids.includes(state.current.id)) closeReader();
    state.checked.clear();
    $("mc-select-all").checked = false;
    loadCounts().catch(fail);
    loadList("keep");
  }

  function changeLabels(id, values) {
    return api("mailMessages", "update", { params: { filterByTk: id }, values })
      .then((d) => {
        if (state.current && state.current.id === id) {
          state.current.labels = d.labels || [];
          renderReader();
        }
        loadList("keep");
        loadCounts().catch(() => {});
      })
      .catch(fail);
  }

  function setTodo(id, values) {
    return api("mailMessages", "update", { params: { filterByTk: id }, values })
      .then((d) => {
        replaceRows(d);
        if (state.current && state.current.id === id) renderReader();
        loadList("keep");
      })
      .catch(fail);
  }

  function createLabel(name) {
    return api("mailMessageLabels", "create", { values: { name } }).then((l) => {
      toast(t("label.created", { name: l.name }));
      return loadLabels().then(() => {
        if (state.current) renderReader();
        return l;
      });
    });
  }

  // ---- refresh, navigation ----
  function refresh() {
    return Promise.all([loadAccounts(), loadCounts(), loadLabels()])
      .then(() => {
        renderFolders();
        return loadList("keep");
      })
      .catch(fail);
  }

  function closeNavOnNarrow() {
    document.body.classList.remove("mc-nav-open");
  }

  function bulkIds() {
    if (state.checked.size) return Array.from(state.checked);
    // Without checkboxes, the open message.
    return state.current ? [state.current.id] : [];
  }

  function wire() {
    $("mc-search-form").addEventListener("submit", (e) => {
      e.preventDefault();
      state.search = $("mc-search").value.trim();
      closeReader();
      loadList(false);
    });
    $("mc-search").addEventListener("search", () => {
      if (!$("mc-search").value && state.search) {
        state.search = "";
        loadList(false);
      }
    });
    [
      ["mc-filter-unread", "unread"],
      ["mc-filter-starred", "starred"],
      ["mc-filter-todo", "todo"],
      ["mc-filter-attachments", "hasAttachments"],
    ].forEach(([id, key]) =>
      $(id).addEventListener("change", (e) => {
        state.filters[key] = e.target.checked;
        loadList(false);
      })
    );
    $("mc-filter-date-from").addEventListener("change", (e) => {
      state.filters.dateFrom = e.target.value;
      loadList(false);
    });
    $("mc-filter-date-to").addEventListener("change", (e) => {
      state.filters.dateTo = e.target.value;
      loadList(false);
    });
    $("mc-select-all").addEventListener("change", (e) => {
      state.checked.clear();
      if (e.target.checked) state.items.filter((m) => !m._draft).forEach((m) => state.checked.add(m.id));
      document.querySelectorAll("#mc-list .mc-check").forEach((c) => (c.checked = e.target.checked));
    });
    const bulk = (fn) => () => {
      const ids = bulkIds();
      if (!ids.length) return toast(t("bulk.nothing"), "error");
      state.checked.clear();
      $("mc-select-all").checked = false;
      fn(ids);
    };
    $("mc-bulk-read").addEventListener("click", bulk((ids) => setFlags(ids, { unread: false })));
    $("mc-bulk-unread").addEventListener("click", bulk((ids) => setFlags(ids, { unread: true })));
    $("mc-bulk-archive").addEventListener("click", bulk((ids) => moveTo(ids, "archive")));
    $("mc-bulk-trash").addEventListener("click", bulk((ids) => trash(ids)));
    $("mc-more").addEventListener("click", () => {
      if (listLoading) return;
      state.page += 1;
      loadList(true);
    });
    $("mc-list").addEventListener("scroll", loadMoreIfNeeded, { passive: true });
    $("mc-compose").addEventListener("click", () => composeWith("new"));
    $("mc-mass").addEventListener("click", (e) => {
      e.preventDefault();
      if (window.MailMass && window.MailMass.open) window.MailMass.open();
      else toast(t("mass.unavailable"), "error");
    });
    $("mc-nav-toggle").addEventListener("click", () => document.body.classList.toggle("mc-nav-open"));
    $("mc-label-create").addEventListener("submit", (e) => {
      e.preventDefault();
      const name = $("mc-label-name").value.trim();
      if (!name) return;
      createLabel(name)
        .then(() => ($("mc-label-name").value = ""))
        .catch(fail);
    });
    $("mc-dev-signin-button").addEventListener("click", () => {
      const opt = $("mc-dev-user").selectedOptions[0];
      fetch("/admin/dev/sign-in", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ userId: Number(opt.value) }) })
        .then((r) => r.json())
        .then((b) => {
          localStorage.setItem(PREFIX + "TOKEN", b.data.token);
          localStorage.setItem(PREFIX + "ROLE", opt.dataset.role);
          location.reload();
        })
        .catch(fail);
    });

    onKey("j", () => moveCursor(1));
    onKey("k", () => moveCursor(-1));
    onKey("Enter", () => {
      const row = state.items[state.cursor];
      if (row) openRow(row);
    });
    onKey("r", () => composeWith("reply"));
    onKey("a", () => composeWith("replyAll"));
    onKey("f", () => composeWith("forward"));
    onKey("c", () => composeWith("new"));
    onKey("e", () => {
      const ids = bulkIds();
      if (ids.length) moveTo(ids, "archive");
    });
    onKey("#", () => {
      const ids = bulkIds();
      if (ids.length) trash(ids);
    });
    onKey("/", () => $("mc-search").focus());
    onKey("Escape", () => {
      if (state.current) closeReader();
    });
  }

  function start() {
    I18N.use(session().locale);
    I18N.apply(document);
    document.documentElement.lang = I18N.locale;
    wire();
    if (!session().token) {
      goSignIn(t("signin.message"));
      return;
    }
    $("mc-app").classList.remove("hidden");
    renderFolders();
    refresh();
    // The unread counts (and the "last sync" times) stay current without reloading the list.
    setInterval(() => {
      if (document.hidden || signingIn) return;
      const before = JSON.stringify(state.counts && state.counts.accounts);
      loadCounts()
        .then(() => {
          // New or changed mail (a sync ran): show it without losing the place in the list.
          if (JSON.stringify(state.counts && state.counts.accounts) !== before) loadList("keep");
        })
        .catch(() => {});
      loadAccounts().catch(() => {});
    }, POLL_MS);
  }

  window.MailApp = {
    api,
    apiForm,
    t,
    i18n: { add: (locale, dict) => I18N.add(locale, dict) },
    toast,
    escape,
    state,
    refresh,
    openMessage,
    onKey,
    selectedMessage: () => state.current,
    // Extras for compose/mass (not part of the fixed interface, but handy): the authenticated
    // bytes of a URL, and the session headers.
    fetchBlob,
    authHeaders,
    // Builds an element: attrs `text`, `class`/`className`, `on<event>`, `dataset`, others as
    // attributes (true → present, false/null → absent); children nodes or strings.
    el,
  };

  // Deferred scripts run before DOMContentLoaded: waiting for it lets compose.js and mass.js
  // (loaded after this file) register their texts and keys before the page starts.
  if (document.readyState === "complete") start();
  else document.addEventListener("DOMContentLoaded", start);
})();
