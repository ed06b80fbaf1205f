// The mass-mailing panel: start a job from a pasted list or a CSV file with a subject/body or a
// template, see the recipients the server rejected, watch progress (mailMassMessages:get every
// second), pause, resume, cancel, and list earlier jobs. Renders into #mass-root; relies on
// window.MailApp and on the helpers compose.js exports.
(function () {
  'use strict';

  const POLL_MS = 1000;

  const EN = {
    'mass.title': 'Mass mailing',
    'mass.newJob': 'New mailing',
    'mass.jobs': 'Earlier mailings',
    'mass.close': 'Close',
    'mass.account': 'Mailbox',
    'mass.from': 'From',
    'mass.recipients': 'Recipients',
    'mass.paste': 'Paste a list',
    'mass.csv': 'CSV file',
    'mass.pasteHint': 'One address per line; "Name <email>" is accepted.',
    'mass.pasteCount': '{count} lines',
    'mass.csvHint': 'The first row names the columns; every column can be used in the message as {example}.',
    'mass.emailColumn': 'Email column',
    'mass.nameColumn': 'Name column',
    'mass.noColumn': '(none)',
    'mass.csvSummary': '{rows} rows; variables: {vars}',
    'mass.csvEmpty': 'The CSV file has no rows under its header.',
    'mass.template': 'Template',
    'mass.noTemplate': 'No template: write the message below',
    'mass.subject': 'Subject',
    'mass.body': 'Message',
    'mass.rate': 'Messages per minute (optional)',
    'mass.start': 'Start mailing',
    'mass.starting': 'Starting…',
    'mass.started': 'Mailing started: {count} recipients',
    'mass.nothing': 'Add at least one recipient.',
    'mass.needBody': 'Write a subject and a message, or choose a template.',
    'mass.rejected': '{count} recipients were not accepted and will not be sent:',
    'mass.rejectedRow': 'line {line}: {email} — {reason}',
    'mass.rejectedCsvRow': 'row {line}: {email} — {reason}',
    'mass.status': 'Status',
    'mass.status.running': 'Running',
    'mass.status.paused': 'Paused',
    'mass.status.cancelled': 'Cancelled',
    'mass.status.completed': 'Completed',
    'mass.total': 'Total',
    'mass.sent': 'Sent',
    'mass.failed': 'Failed',
    'mass.queued': 'Waiting',
    'mass.pause': 'Pause',
    'mass.resume': 'Resume',
    'mass.cancel': 'Cancel',
    'mass.cancelConfirm': 'Cancel this mailing? Messages already sent stay sent.',
    'mass.failures': 'Failed recipients',
    'mass.pauseReason': 'Paused: {reason}',
    'mass.noJobs': 'No mailings yet.',
    'mass.back': 'Back',
    'mass.created': 'Created',
    'mass.progress': '{sent} of {total} sent',
    'mass.noAccount': 'Link a mailbox first (Email settings).',
  };
  const ZH = {
    'mass.title': '群发邮件',
    'mass.newJob': '新建群发',
    'mass.jobs': '历史群发',
    'mass.close': '关闭',
    'mass.account': '邮箱',
    'mass.from': '发件人',
    'mass.recipients': '收件人',
    'mass.paste': '粘贴列表',
    'mass.csv': 'CSV 文件',
    'mass.pasteHint': '每行一个地址；支持“姓名 <email>”格式。',
    'mass.pasteCount': '{count} 行',
    'mass.csvHint': '第一行为列名；每一列都可在邮件中以 {example} 的形式使用。',
    'mass.emailColumn': '邮箱列',
    'mass.nameColumn': '姓名列',
    'mass.noColumn': '（无）',
    'mass.csvSummary': '{rows} 行；变量：{vars}',
    'mass.csvEmpty': 'CSV 文件在表头下没有数据行。',
    'mass.template': '模板',
    'mass.noTemplate': '不使用模板：在下方撰写邮件',
    'mass.subject': '主题',
    'mass.body': '正文',
    'mass.rate': '每分钟发送数（可选）',
    'mass.start': '开始群发',
    'mass.starting': '正在开始…',
    'mass.started': '群发已开始：{count} 位收件人',
    'mass.nothing': '请至少添加一位收件人。',
    'mass.needBody': '请填写主题和正文，或选择一个模板。',
    'mass.rejected': '{count} 位收件人未被接受，不会发送：',
    'mass.rejectedRow': '第 {line} 行：{email} — {reason}',
    'mass.rejectedCsvRow': '第 {line} 行：{email} — {reason}',
    'mass.status': '状态',
    'mass.status.running': '发送中',
    'mass.status.paused': '已暂停',
    'mass.status.cancelled': '已取消',
    'mass.status.completed': '已完成',
    'mass.total': '总数',
    'mass.sent': '已发送',
    'mass.failed': '失败',
    'mass.queued': '等待中',
    'mass.pause': '暂停',
    'mass.resume': '继续',
    'mass.cancel': '取消',
    'mass.cancelConfirm': '取消此次群发？已发送的邮件不会撤回。',
    'mass.failures': '发送失败的收件人',
    'mass.pauseReason': '已暂停：{reason}',
    'mass.noJobs': '还没有群发记录。',
    'mass.back': '返回',
    'mass.created': '创建时间',
    'mass.progress': '已发送 {sent} / {total}',
    'mass.noAccount': '请先关联邮箱（邮件设置）。',
  };

  function app() {
    return window.MailApp;
  }
  // The shell's i18n (our EN/ZH texts are registered with it below; it falls back to English).
  const t = (key, vars) => window.MailApp.t(key, vars);
  // The shell's element builder (MailApp.el), looked up when called: app.js loads first.
  const el = (tag, attrs, children) => window.MailApp.el(tag, attrs, children);
  function listOf(d) {
    if (Array.isArray(d)) return d;
    if (d && Array.isArray(d.data)) return d.data;
    return [];
  }
  function when(iso) {
    const d = iso ? new Date(iso) : null;
    return d && !isNaN(d) ? d.toLocaleString([], { dateStyle: 'short', timeStyle: 'short' }) : '';
  }

  // ---- Recipients --------------------------------------------------------------------------

  // One recipient per line: "Name <email>", "<email>" or "email". Everything goes to the server,
  // which judges each address and reports the bad ones by index; `lines` (when given) receives
  // each recipient's line number so a rejection names the line the user sees.
  function parsePasted(text, lines) {
    const out = [];
    const all = text.split(/\r?\n/);
    for (let n = 0; n < all.length; n++) {
      const line = all[n].trim();
      if (!line) continue;
      if (lines) lines.push(n + 1);
      const m = line.match(/^(.*?)<([^<>]*)>\s*$/);
      if (m) {
        let name = m[1].trim().replace(/,$/, '').trim();
        if (name.startsWith('"') && name.endsWith('"') && name.length >= 2) name = name.slice(1, -1);
        const r = { email: m[2].trim() };
        if (name) r.name = name;
        out.push(r);
      } else {
        out.push({ email: line.replace(/^mailto:/i, '').replace(/[,;]$/, '') });
      }
    }
    return out;
  }

  // RFC 4180 CSV: quoted fields with "" escapes and line breaks, CRLF or LF, a BOM; the
  // delimiter is a comma unless the header holds more semicolons or tabs (spreadsheets in many
  // locales write semicolons).
  function parseCsv(text) {
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    const firstLine = text.split(/\r?\n/, 1)[0] || '';
    const count = (c) => firstLine.split(c).length - 1;
    let delim = ',';
    if (count(';') > count(delim)) delim = ';';
    if (count('\t') > count(delim)) delim = '\t';
    const rows = [];
    let row = [];
    let field = '';
    let quoted = false;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (quoted) {
        if (c === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i++;
          } else quoted = false;
        } else field += c;
      } else if (c === '"' && field === '') quoted = true;
      else if (c === delim) {
        row.push(field);
        field = '';
      } else if (c === '\n' || c === '\r') {
        if (c === '\r' && text[i + 1] === '\n') i++;
        row.push(field);
        field = '';
        if (row.some((f) => f.trim() !== '')) rows.push(row);
        row = [];
      } else field += c;
    }
    row.push(field);
    if (row.some((f) => f.trim() !== '')) rows.push(row);
    if (!rows.length) return { columns: [], records: [] };
    const columns = rows[0].map((h, i) => h.trim() || `column${i + 1}`);
    const records = rows.slice(1).map((r) => {
      const rec = {};
      columns.forEach((col, i) => (rec[col] = (r[i] || '').trim()));
      return rec;
    });
    return { columns, records };
  }

  // ---- The panel ---------------------------------------------------------------------------

  let panel = null;

  class MassPanel {
    constructor() {
      this.pollTimer = null;
      this.jobId = null;
      this.csv = null;
      this.aliases = [];
      this.templates = [];
      this.render();
    }

    render() {
      const root = document.getElementById('mass-root') || document.body;
      root.textContent = '';
      this.body = el('div', { class: 'mm-body' });
      this.dialog = el('section', { id: 'mm-dialog', class: 'mm-dialog mm-open', role: 'dialog', 'aria-labelledby': 'mm-title' }, [
        el('header', { class: 'cp-header mm-header' }, [
          el('h2', { id: 'mm-title', text: t('mass.title') }),
          el('nav', { class: 'mm-tabs' }, [
            el('button', { id: 'mm-tab-new', type: 'button', class: 'mm-tab', text: t('mass.newJob'), onclick: () => this.showForm() }),
            el('button', { id: 'mm-tab-jobs', type: 'button', class: 'mm-tab', text: t('mass.jobs'), onclick: () => this.showJobs() }),
          ]),
          el('span', { class: 'cp-spacer' }),
          el('button', { id: 'mm-close', type: 'button', class: 'cp-icon', title: t('mass.close'), 'aria-label': t('mass.close'), text: '×', onclick: () => this.close() }),
        ]),
        this.body,
      ]);
      this.dialog.addEventListener('keydown', (e) => {
        if (e.key === 'Escape') {
          e.preventDefault();
          this.close();
        }
        e.stopPropagation();
      });
      root.appendChild(this.dialog);
    }

    tab(name) {
      this.dialog.querySelectorAll('.mm-tab').forEach((b) => b.classList.toggle('mm-tab-active', b.id === 'mm-tab-' + name));
    }

    stopPolling() {
      clearTimeout(this.pollTimer);
      this.pollTimer = null;
      this.jobId = null;
    }

    close() {
      this.stopPolling();
      if (this.dialog.parentNode) this.dialog.parentNode.removeChild(this.dialog);
      if (panel === this) panel = null;
    }

    async showForm() {
      this.stopPolling();
      this.tab('new');
      this.body.textContent = '';
      const accounts = (app().state && app().state.accounts) || [];
      if (!accounts.length) {
        this.body.appendChild(el('p', { class: 'cp-error', text: t('mass.noAccount') }));
        return;
      }
      const [aliases, templates] = await Promise.all([
        app().api('mailAliases', 'list').catch(() => []),
        app().api('mailTemplates', 'list', { params: { pageSize: 200 } }).catch(() => []),
      ]);
      this.aliases = listOf(aliases);
      this.templates = listOf(templates);

      this.account = el('select', { id: 'mm-account', class: 'cp-select', onchange: () => this.fillFrom() });
      for (const a of accounts) this.account.appendChild(el('option', { value: String(a.id), text: a.email }));
      const st = app().state || {};
      if (st.accountId && accounts.some((a) => a.id === st.accountId)) this.account.value = String(st.accountId);
      this.from = el('select', { id: 'mm-from', class: 'cp-select' });
      this.fillFrom();

      this.sourcePaste = el('input', { id: 'mm-source-paste', type: 'radio', name: 'mm-source', value: 'paste', checked: true, onchange: () => this.sourceChanged() });
      this.sourceCsv = el('input', { id: 'mm-source-csv', type: 'radio', name: 'mm-source', value: 'csv', onchange: () => this.sourceChanged() });
      this.paste = el('textarea', { id: 'mm-paste', class: 'cp-input mm-paste', rows: '6', placeholder: 'Ann Lee <ann@example.com>\nbob@example.com', oninput: () => (this.pasteCount.textContent = t('mass.pasteCount', { count: parsePasted(this.paste.value).length })) });
      this.pasteCount = el('span', { id: 'mm-paste-count', class: 'cp-note', text: t('mass.pasteCount', { count: 0 }) });
      this.csvFile = el('input', { id: 'mm-csv', type: 'file', accept: '.csv,text/csv,text/plain', onchange: () => this.readCsv() });
      this.emailColumn = el('select', { id: 'mm-email-column', class: 'cp-select' });
      this.nameColumn = el('select', { id: 'mm-name-column', class: 'cp-select' });
      this.csvSummary = el('div', { id: 'mm-csv-summary', class: 'cp-note' });
      this.pasteBox = el('div', { class: 'mm-source-box' }, [this.paste, el('div', { class: 'cp-note', text: t('mass.pasteHint') }), this.pasteCount]);
      this.csvBox = el('div', { class: 'mm-source-box', hidden: true }, [
        this.csvFile,
        el('div', { class: 'cp-note', text: t('mass.csvHint', { example: '{{column}}' }) }),
        el('div', { class: 'cp-row' }, [el('label', { for: 'mm-email-column', text: t('mass.emailColumn') }), this.emailColumn]),
        el('div', { class: 'cp-row' }, [el('label', { for: 'mm-name-column', text: t('mass.nameColumn') }), this.nameColumn]),
        this.csvSummary,
      ]);

      this.template = el('select', { id: 'mm-template', class: 'cp-select', onchange: () => (this.writeBox.hidden = !!this.template.value) });
      this.template.appendChild(el('option', { value: '', text: t('mass.noTemplate') }));
      for (const tpl of this.templates) this.template.appendChild(el('option', { value: String(tpl.id), text: tpl.name }));
      this.subject = el('input', { id: 'mm-subject', type: 'text', class: 'cp-input', maxlength: '998', placeholder: t('mass.subject'), 'aria-label': t('mass.subject') });
      this.editor = el('div', { id: 'mm-body', class: 'cp-body mm-editor', contenteditable: 'true', role: 'textbox', 'aria-multiline': 'true', 'aria-label': t('mass.body') });
      const tb = window.MailCompose && window.MailCompose._toolbar ? window.MailCompose._toolbar(this.editor, 'mm') : null;
      this.writeBox = el('div', { class: 'mm-write' }, [el('div', { class: 'cp-row' }, [this.subject]), el('div', { class: 'cp-editor' }, [tb, this.editor])]);
      this.rate = el('input', { id: 'mm-rate', type: 'number', min: '1', step: '1', class: 'cp-input mm-rate' });
      this.error = el('div', { id: 'mm-error', class: 'cp-error', role: 'alert', hidden: true });
      this.start = el('button', { id: 'mm-start', type: 'button', class: 'cp-primary', text: t('mass.start'), onclick: () => this.create() });

      this.body.appendChild(el('div', { class: 'mm-form' }, [
        el('div', { class: 'cp-row' }, [el('label', { for: 'mm-account', text: t('mass.account') }), this.account]),
        el('div', { class: 'cp-row' }, [el('label', { for: 'mm-from', text: t('mass.from') }), this.from]),
        el('fieldset', { class: 'mm-recipients' }, [
          el('legend', { text: t('mass.recipients') }),
          el('label', { class: 'mm-radio' }, [this.sourcePaste, ' ' + t('mass.paste')]),
          el('label', { class: 'mm-radio' }, [this.sourceCsv, ' ' + t('mass.csv')]),
          this.pasteBox,
          this.csvBox,
        ]),
        this.templates.length ? el('div', { class: 'cp-row' }, [el('label', { for: 'mm-template', text: t('mass.template') }), this.template]) : null,
        this.writeBox,
        el('div', { class: 'cp-row' }, [el('label', { for: 'mm-rate', text: t('mass.rate') }), this.rate]),
        this.error,
        el('div', { class: 'cp-footer' }, [this.start]),
      ]));
    }

    fillFrom() {
      const accountId = Number(this.account.value);
      this.from.textContent = '';
      for (const a of this.aliases.filter((x) => x.accountId === accountId)) {
        const o = el('option', { value: a.address, text: a.name ? `${a.name} <${a.address}>` : a.address });
        if (a.isDefault) o.selected = true;
        this.from.appendChild(o);
      }
    }

    sourceChanged() {
      const csv = this.sourceCsv.checked;
      this.csvBox.hidden = !csv;
      this.pasteBox.hidden = csv;
    }

    readCsv() {
      const f = this.csvFile.files && this.csvFile.files[0];
      this.csv = null;
      this.emailColumn.textContent = '';
      this.nameColumn.textContent = '';
      this.csvSummary.textContent = '';
      if (!f) return;
      const reader = new FileReader();
      reader.onload = () => {
        const parsed = parseCsv(String(reader.result || ''));
        this.csv = parsed;
        this.nameColumn.appendChild(el('option', { value: '', text: t('mass.noColumn') }));
        for (const c of parsed.columns) {
          this.emailColumn.appendChild(el('option', { value: c, text: c }));
          this.nameColumn.appendChild(el('option', { value: c, text: c }));
        }
        const email = parsed.columns.find((c) => /e-?mail/i.test(c)) || parsed.columns[0];
        if (email) this.emailColumn.value = email;
        const name = parsed.columns.find((c) => /^(full[ _-]?)?name$/i.test(c)) || parsed.columns.find((c) => /name/i.test(c) && c !== email);
        if (name) this.nameColumn.value = name;
        this.csvSummary.textContent = parsed.records.length
          ? t('mass.csvSummary', { rows: parsed.records.length, vars: parsed.columns.map((c) => '{{' + c + '}}').join(' ') })
          : t('mass.csvEmpty');
      };
      reader.readAsText(f);
    }

    showError(msg) {
      this.error.textContent = msg;
      this.error.hidden = !msg;
    }

    async create() {
      this.showError('');
      const values = { accountId: Number(this.account.value) };
      if (this.from.value) values.from = this.from.value;
      let count = 0;
      this.csvLines = false;
      if (this.sourceCsv.checked) {
        if (!this.csv || !this.csv.records.length) return this.showError(this.csv ? t('mass.csvEmpty') : t('mass.nothing'));
        // Row 1 is the header: record i is on row i + 2.
        this.lineOf = this.csv.records.map((_, i) => i + 2);
        this.csvLines = true;
        values.records = this.csv.records;
        values.emailField = this.emailColumn.value;
        if (this.nameColumn.value) values.nameField = this.nameColumn.value;
        count = this.csv.records.length;
      } else {
        this.lineOf = [];
        values.recipients = parsePasted(this.paste.value, this.lineOf);
        count = values.recipients.length;
        if (!count) return this.showError(t('mass.nothing'));
      }
      const html = this.editor.textContent.trim() || this.editor.querySelector('img') ? this.editor.innerHTML : '';
      if (this.template.value) {
        values.templateId = Number(this.template.value);
        if (this.subject.value.trim()) values.subject = this.subject.value.trim();
      } else {
        if (!this.subject.value.trim() || !html) return this.showError(t('mass.needBody'));
        values.subject = this.subject.value.trim();
        values.html = html;
      }
      const rate = parseInt(this.rate.value, 10);
      if (rate > 0) values.rate = rate;
      this.start.disabled = true;
      this.start.textContent = t('mass.starting');
      try {
        const job = await app().api('mailMassMessages', 'create', { values });
        this.createdId = job.id;
        app().toast(t('mass.started', { count: job.total != null ? job.total : count }), 'info');
        this.showJob(job);
      } catch (e) {
        this.showError(e.message);
      } finally {
        this.start.disabled = false;
        this.start.textContent = t('mass.start');
      }
    }

    // ---- A job ----

    showJob(job) {
      this.stopPolling();
      this.tab('jobs');
      this.jobId = job.id;
      this.body.textContent = '';
      this.view = {
        status: el('span', { id: 'mm-status', class: 'mm-status' }),
        reason: el('div', { id: 'mm-pause-reason', class: 'cp-note', hidden: true }),
        total: el('span', { id: 'mm-total' }),
        sent: el('span', { id: 'mm-sent' }),
        failed: el('span', { id: 'mm-failed' }),
        queued: el('span', { id: 'mm-queued' }),
        bar: el('div', { class: 'mm-bar-fill' }),
        failures: el('ul', { id: 'mm-failures', class: 'mm-list' }),
        failuresBox: el('div', { class: 'mm-failures', hidden: true }),
        rejected: el('div', { id: 'mm-rejected', class: 'mm-rejected', hidden: true }),
        pause: el('button', { id: 'mm-pause', type: 'button', text: t('mass.pause'), onclick: () => this.act('pause') }),
        resume: el('button', { id: 'mm-resume', type: 'button', text: t('mass.resume'), onclick: () => this.act('resume') }),
        cancel: el('button', { id: 'mm-cancel', type: 'button', class: 'cp-danger', text: t('mass.cancel'), onclick: () => { if (window.confirm(t('mass.cancelConfirm'))) this.act('cancel'); } }),
        error: el('div', { id: 'mm-job-error', class: 'cp-error', role: 'alert', hidden: true }),
      };
      const v = this.view;
      v.failuresBox.appendChild(el('h4', { text: t('mass.failures') }));
      v.failuresBox.appendChild(v.failures);
      const stat = (label, node) => el('div', { class: 'mm-stat' }, [el('span', { class: 'mm-stat-label', text: label }), node]);
      this.body.appendChild(el('div', { id: 'mm-job', class: 'mm-job', 'data-job': String(job.id) }, [
        el('div', { class: 'mm-job-head' }, [
          el('button', { id: 'mm-back', type: 'button', class: 'cp-link', text: '← ' + t('mass.back'), onclick: () => this.showJobs() }),
          el('h3', { class: 'mm-job-subject', text: job.subject || '' }),
        ]),
        el('div', { class: 'cp-row' }, [el('span', { class: 'mm-stat-label', text: t('mass.status') }), v.status]),
        v.reason,
        el('div', { class: 'mm-bar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100' }, [v.bar]),
        el('div', { class: 'mm-stats' }, [stat(t('mass.total'), v.total), stat(t('mass.sent'), v.sent), stat(t('mass.failed'), v.failed), stat(t('mass.queued'), v.queued)]),
        el('div', { class: 'cp-footer' }, [v.pause, v.resume, v.cancel]),
        v.error,
        v.rejected,
        v.failuresBox,
      ]));
      this.update(job);
      this.poll();
    }

    update(job) {
      const v = this.view;
      if (!v || job.id !== this.jobId) return;
      v.status.textContent = t('mass.status.' + job.status);
      v.status.dataset.status = job.status;
      v.status.className = 'mm-status mm-status-' + job.status;
      v.reason.hidden = !(job.status === 'paused' && job.pauseReason);
      v.reason.textContent = job.pauseReason ? t('mass.pauseReason', { reason: job.pauseReason }) : '';
      v.total.textContent = String(job.total || 0);
      v.sent.textContent = String(job.sent || 0);
      v.failed.textContent = String(job.failed || 0);
      v.queued.textContent = String((job.queued || 0) + (job.sending || 0));
      const done = (job.sent || 0) + (job.failed || 0);
      const pct = job.total ? Math.round((100 * done) / job.total) : job.status === 'completed' ? 100 : 0;
      v.bar.style.width = pct + '%';
      v.bar.parentNode.setAttribute('aria-valuenow', String(pct));
      v.bar.parentNode.title = t('mass.progress', { sent: job.sent || 0, total: job.total || 0 });
      const active = job.status === 'running' || job.status === 'paused';
      v.pause.hidden = job.status !== 'running';
      v.resume.hidden = job.status !== 'paused';
      v.cancel.hidden = !active;
      const rejected = job.rejected || [];
      v.rejected.hidden = !rejected.length;
      if (rejected.length && !v.rejected.childNodes.length) {
        v.rejected.appendChild(el('p', { text: t('mass.rejected', { count: rejected.length }) }));
        const ul = el('ul', { class: 'mm-list' });
        for (const r of rejected) {
          // Line numbers are known for the job just created here; an earlier job shows positions.
          const known = job.id === this.createdId && this.lineOf && this.lineOf[r.index];
          const line = known || (r.index || 0) + 1;
          const key = known && this.csvLines ? 'mass.rejectedCsvRow' : 'mass.rejectedRow';
          ul.appendChild(el('li', { class: 'mm-rejected-row', 'data-index': String(r.index), text: t(key, { line, email: r.email || '', reason: r.reason || '' }) }));
        }
        v.rejected.appendChild(ul);
      }
      const failures = job.failures || [];
      v.failuresBox.hidden = !failures.length;
      v.failures.textContent = '';
      for (const f of failures) v.failures.appendChild(el('li', { class: 'mm-failure', text: `${f.email}: ${f.reason}` }));
    }

    // Every second while the job can still change; stops when it is done or the panel closes.
    poll() {
      clearTimeout(this.pollTimer);
      const id = this.jobId;
      this.pollTimer = setTimeout(async () => {
        if (this.jobId !== id) return;
        try {
          const job = await app().api('mailMassMessages', 'get', { params: { filterByTk: id } });
          if (this.jobId !== id) return;
          this.view.error.hidden = true;
          this.update(job);
          if (job.status === 'running' || job.status === 'paused') this.poll();
        } catch (e) {
          if (this.jobId !== id) return;
          this.view.error.textContent = e.message;
          this.view.error.hidden = false;
          this.poll();
        }
      }, POLL_MS);
    }

    async act(action) {
      const id = this.jobId;
      try {
        const job = await app().api('mailMassMessages', action, { params: { filterByTk: id } });
        this.update(job);
        this.poll();
      } catch (e) {
        this.view.error.textContent = e.message;
        this.view.error.hidden = false;
      }
    }

    // ---- Earlier jobs ----

    async showJobs() {
      this.stopPolling();
      this.tab('jobs');
      this.body.textContent = '';
      const list = el('table', { id: 'mm-jobs', class: 'mm-jobs' });
      this.body.appendChild(list);
      let jobs;
      try {
        jobs = listOf(await app().api('mailMassMessages', 'list', { params: { pageSize: 50 } }));
      } catch (e) {
        this.body.appendChild(el('div', { class: 'cp-error', role: 'alert', text: e.message }));
        return;
      }
      if (!jobs.length) {
        this.body.appendChild(el('p', { class: 'cp-note', text: t('mass.noJobs') }));
        return;
      }
      list.appendChild(el('tr', {}, [t('mass.subject'), t('mass.status'), t('mass.sent'), t('mass.failed'), t('mass.created')].map((h) => el('th', { text: h }))));
      for (const j of jobs) {
        const tr = el('tr', { class: 'mm-job-row', 'data-job': String(j.id), tabindex: '0', onclick: () => this.showJob(j), onkeydown: (e) => { if (e.key === 'Enter') this.showJob(j); } }, [
          el('td', { text: j.subject || '' }),
          el('td', { class: 'mm-status-' + j.status, text: t('mass.status.' + j.status) }),
          el('td', { text: `${j.sent || 0} / ${j.total || 0}` }),
          el('td', { text: String(j.failed || 0) }),
          el('td', { text: when(j.createdAt) }),
        ]);
        list.appendChild(tr);
      }
    }
  }

  function open() {
    if (panel) panel.close();
    panel = new MassPanel();
    panel.showForm();
    return panel;
  }

  function register() {
    const a = app();
    if (!a || !a.i18n || register.done) return;
    register.done = true;
    a.i18n.add('en', EN);
    a.i18n.add('zh-CN', ZH);
  }
  register();
  if (!register.done) document.addEventListener('DOMContentLoaded', register);

  window.MailMass = { open, current: () => panel, _parsePasted: parsePasted, _parseCsv: parseCsv };
})();
