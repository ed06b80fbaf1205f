// The writing side of the mail center: compose, reply, reply all, forward, drafts auto-save,
// attachments, signatures and templates. Plain ES2020, no framework. It relies only on the
// window.MailApp interface the shell (app.js) provides and renders into #compose-root.
//
// Choices (see docs/users.md):
// - The quoted original of a reply/forward and the signature are added by the server on send
//   (send::signature::assemble), so the editor holds only what the user writes; the signature
//   is shown below it and chosen with a select. A template fills the editor, never the signature.
// - Every compose is a server draft from its first change: mailDrafts:create, then
//   mailDrafts:update with a growing revision every few seconds while typing. Send is
//   mailDrafts:send, whose idempotency key is the draft and its revision: a double click or a
//   retry of the same content sends once, and the draft is removed by the send itself.
(function () {
  'use strict';

  const SAVE_DELAY_MS = 2000; // quiet time before an auto-save
  const SAVE_MAX_WAIT_MS = 5000; // at most this long between saves while typing

  const EN = {
    'compose.new': 'New message',
    'compose.reply': 'Reply',
    'compose.replyAll': 'Reply all',
    'compose.forward': 'Forward',
    'compose.from': 'From',
    'compose.to': 'To',
    'compose.cc': 'Cc',
    'compose.bcc': 'Bcc',
    'compose.showCcBcc': 'Cc / Bcc',
    'compose.subject': 'Subject',
    'compose.body': 'Message',
    'compose.send': 'Send',
    'compose.sending': 'Sending…',
    'compose.sent': 'Message sent',
    'compose.close': 'Close (the draft is kept)',
    'compose.discard': 'Discard',
    'compose.discarded': 'Draft discarded',
    'compose.minimize': 'Minimise',
    'compose.attach': 'Attach files',
    'compose.dropHere': 'Drop files to attach them',
    'compose.uploading': 'uploading…',
    'compose.removeAttachment': 'Remove {name}',
    'compose.tooLarge': '{name} is too large: {size}, the limit is {limit}.',
    'compose.uploadFailed': '{name} could not be attached: {message}',
    'compose.bold': 'Bold',
    'compose.italic': 'Italic',
    'compose.bulleted': 'Bulleted list',
    'compose.numbered': 'Numbered list',
    'compose.link': 'Link',
    'compose.linkPrompt': 'Link address (https://…)',
    'compose.quote': 'Quote',
    'compose.clearFormat': 'Clear formatting',
    'compose.template': 'Insert template…',
    'compose.templateMissing': 'The template has no value for: {names}',
    'compose.signature': 'Signature',
    'compose.noSignature': 'No signature',
    'compose.defaultMark': '{name} (default)',
    'compose.quoteNote': 'The original message is quoted below your text when it is sent.',
    'compose.forwardNote': 'The original message and its attachments are included when it is sent.',
    'compose.forwardedFiles': 'Forwarded attachments: {names}',
    'compose.saving': 'Saving…',
    'compose.saved': 'Draft saved {time}',
    'compose.notSaved': 'Draft not saved: {message}',
    'compose.draftOffer': 'You have a draft to these recipients from {time}.',
    'compose.restore': 'Restore it',
    'compose.ignore': 'Ignore',
    'compose.draftKept': 'Draft saved',
    'compose.invalidAddress': '"{value}" is not an email address',
    'compose.fixAddresses': 'Correct or remove the addresses marked in red.',
    'compose.noRecipients': 'Add at least one recipient.',
    'compose.waitUploads': 'Wait until the attachments are uploaded.',
    'compose.removeFailed': 'Remove the attachments that could not be added before sending.',
    'compose.sendFailed': 'Not sent: {message}',
    'compose.removeAddress': 'Remove {address}',
    'compose.noAccount': 'Link a mailbox first (Email settings).',
    'compose.discardConfirm': 'Discard this draft?',
  };

  const ZH = {
    'compose.new': '新邮件',
    'compose.reply': '回复',
    'compose.replyAll': '全部回复',
    'compose.forward': '转发',
    'compose.from': '发件人',
    'compose.to': '收件人',
    'compose.cc': '抄送',
    'compose.bcc': '密送',
    'compose.showCcBcc': '抄送 / 密送',
    'compose.subject': '主题',
    'compose.body': '正文',
    'compose.send': '发送',
    'compose.sending': '正在发送…',
    'compose.sent': '邮件已发送',
    'compose.close': '关闭（保留草稿）',
    'compose.discard': '舍弃',
    'compose.discarded': '草稿已舍弃',
    'compose.minimize': '最小化',
    'compose.attach': '添加附件',
    'compose.dropHere': '将文件拖放到此处以添加附件',
    'compose.uploading': '正在上传…',
    'compose.removeAttachment': '移除 {name}',
    'compose.tooLarge': '{name} 太大：{size}，上限为 {limit}。',
    'compose.uploadFailed': '无法添加 {name}：{message}',
    'compose.bold': '粗体',
    'compose.italic': '斜体',
    'compose.bulleted': '项目符号列表',
    'compose.numbered': '编号列表',
    'compose.link': '链接',
    'compose.linkPrompt': '链接地址（https://…）',
    'compose.quote': '引用',
    'compose.clearFormat': '清除格式',
    'compose.template': '插入模板…',
    'compose.templateMissing': '模板缺少以下变量的值：{names}',
    'compose.signature': '签名',
    'compose.noSignature': '不使用签名',
    'compose.defaultMark': '{name}（默认）',
    'compose.quoteNote': '发送时，原邮件会引用在您的正文下方。',
    'compose.forwardNote': '发送时会附上原邮件及其附件。',
    'compose.forwardedFiles': '转发的附件：{names}',
    'compose.saving': '正在保存…',
    'compose.saved': '草稿已于 {time} 保存',
    'compose.notSaved': '草稿未保存：{message}',
    'compose.draftOffer': '您在 {time} 有一封发给这些收件人的草稿。',
    'compose.restore': '恢复',
    'compose.ignore': '忽略',
    'compose.draftKept': '草稿已保存',
    'compose.invalidAddress': '“{value}”不是有效的邮箱地址',
    'compose.fixAddresses': '请更正或移除标红的地址。',
    'compose.noRecipients': '请至少添加一位收件人。',
    'compose.waitUploads': '请等待附件上传完成。',
    'compose.removeFailed': '发送前请移除未能添加的附件。',
    'compose.sendFailed': '未发送：{message}',
    'compose.removeAddress': '移除 {address}',
    'compose.noAccount': '请先关联邮箱（邮件设置）。',
    'compose.discardConfirm': '舍弃此草稿？',
  };

  function app() {
    return window.MailApp;
  }
  // The shell's i18n (our EN/ZH texts are registered with it below; it falls back to English).
  const t = (key, vars) => window.MailApp.t(key, vars);
  function esc(s) {
    return app() && app().escape
      ? app().escape(s == null ? '' : String(s))
      : String(s == null ? '' : s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  }
  function toast(msg, kind) {
    if (app() && app().toast) app().toast(msg, kind || 'info');
  }
  // The shell's element builder (MailApp.el), looked up when called: app.js loads first.
  const el = (tag, attrs, children) => window.MailApp.el(tag, attrs, children);
  function formatSize(n) {
    if (n == null) return '';
    if (n < 1024) return n + ' B';
    if (n < 1024 * 1024) return (n / 1024).toFixed(n < 10240 ? 1 : 0) + ' KB';
    return (n / 1048576).toFixed(n < 10485760 ? 1 : 0) + ' MB';
  }
  function timeOf(iso) {
    const d = iso ? new Date(iso) : new Date();
    return isNaN(d) ? '' : d.toLocaleString([], { dateStyle: 'short', timeStyle: 'short' });
  }

  // ---- Addresses ---------------------------------------------------------------------------

  // The server's rule (docs/sending.md "Addresses"), closely enough to mark typos at once; the
  // server stays the judge and names any address it refuses.
  const LOCAL = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;
  const LABEL = /^[A-Za-z0-9\u00a0-\uffff]([A-Za-z0-9\u00a0-\uffff-]{0,61}[A-Za-z0-9\u00a0-\uffff])?$/;
  function validAddress(addr) {
    if (!addr || addr.length > 254 || /\s/.test(addr)) return false;
    const at = addr.lastIndexOf('@');
    if (at <= 0 || addr.indexOf('@') !== at) return false;
    const local = addr.slice(0, at);
    const labels = addr.slice(at + 1).split('.');
    if (local.length > 64 || !LOCAL.test(local)) return false;
    if (labels.length < 2 || !labels.every((l) => LABEL.test(l))) return false;
    return !/^\d+$/.test(labels[labels.length - 1]);
  }

  // Splits pasted text into items: commas, semicolons and line breaks separate, except inside
  // quotes or angle brackets ("Lee, Ann" <ann@example.com>).
  function splitAddresses(text) {
    const out = [];
    let cur = '';
    let quoted = false;
    let angle = false;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (c === '\\' && quoted && i + 1 < text.length) {
        cur += c + text[++i];
        continue;
      }
      if (c === '"') quoted = !quoted;
      else if (c === '<' && !quoted) angle = true;
      else if (c === '>' && !quoted) angle = false;
      if (!quoted && !angle && (c === ',' || c === ';' || c === '\n' || c === '\r')) {
        if (cur.trim()) out.push(cur.trim());
        cur = '';
        continue;
      }
      cur += c;
    }
    if (cur.trim()) out.push(cur.trim());
    return out;
  }

  // "Ann Lee <ann@example.com>", "<ann@example.com>", "ann@example.com" → {name, address, valid}.
  function parseAddress(item) {
    const s = item.trim();
    const m = s.match(/^(.*?)<([^<>]*)>\s*$/);
    let name = '';
    let address = s;
    if (m) {
      name = m[1].trim();
      address = m[2].trim();
      if (name.startsWith('"') && name.endsWith('"') && name.length >= 2) {
        name = name.slice(1, -1).replace(/\\(.)/g, '$1');
      }
    } else {
      address = s.replace(/^mailto:/i, '');
    }
    return { name, address, valid: validAddress(address) };
  }

  // A name with specials is quoted (RFC 5322), quotes and backslashes escaped; line breaks,
  // which the server refuses in a string item, become spaces.
  function formatAddress(x) {
    const name = (x.name || '').replace(/[\r\n\t]+/g, ' ').trim();
    if (!name) return x.address;
    const quoted = /[()<>[\]:;@\\,."]/.test(name) ? '"' + name.replace(/(["\\])/g, '\\$1') + '"' : name;
    return `${quoted} <${x.address}>`;
  }

  function sameAddress(a, b) {
    return String(a || '').toLowerCase() === String(b || '').toLowerCase();
  }

  // A chip field for to/cc/bcc: Enter, comma, semicolon, Tab or leaving the field turn the
  // text into chips; a paste of several addresses makes several chips.
  class AddressField {
    constructor(id, label, onChange) {
      this.items = [];
      this.onChange = onChange;
      this.input = el('input', {
        id: id + '-input',
        type: 'text',
        class: 'cp-address-input',
        autocomplete: 'off',
        spellcheck: 'false',
        'aria-label': label,
      });
      this.chips = el('span', { class: 'cp-chips' });
      this.root = el('div', { id, class: 'cp-address-field', onclick: (e) => { if (e.target === this.root) this.input.focus(); } }, [this.chips, this.input]);
      this.input.addEventListener('keydown', (e) => this.keydown(e));
      this.input.addEventListener('blur', () => this.commit());
      this.input.addEventListener('paste', (e) => {
        const text = (e.clipboardData || window.clipboardData).getData('text');
        if (text && /[,;\n]/.test(text)) {
          e.preventDefault();
          this.addText(this.input.value + text);
          this.input.value = '';
        }
      });
    }
    keydown(e) {
      // A comma inside a quoted name ("Lee, Ann" <…>) or angle brackets is part of the address.
      const open = (this.input.value.split('"').length - 1) % 2 === 1 || this.input.value.lastIndexOf('<') > this.input.value.lastIndexOf('>');
      const separator = (e.key === ',' || e.key === ';') && !open;
      if (e.key === 'Enter' || separator || (e.key === 'Tab' && this.input.value.trim())) {
        if (this.input.value.trim()) {
          e.preventDefault();
          this.commit();
        }
      } else if (e.key === 'Backspace' && !this.input.value && this.items.length) {
        this.remove(this.items.length - 1);
      }
    }
    commit() {
      if (this.input.value.trim()) {
        this.addText(this.input.value);
        this.input.value = '';
      }
    }
    addText(text) {
      const added = splitAddresses(text).map(parseAddress);
      this.addItems(added);
    }
    addItems(list) {
      let changed = false;
      for (const item of list) {
        if (!item || !item.address) continue;
        if (this.items.some((x) => sameAddress(x.address, item.address))) continue;
        this.items.push({ name: item.name || '', address: item.address, valid: item.valid !== undefined ? item.valid : validAddress(item.address) });
        changed = true;
      }
      if (changed) {
        this.render();
        this.onChange();
      }
    }
    remove(i) {
      this.items.splice(i, 1);
      this.render();
      this.onChange();
    }
    set(list) {
      this.items = [];
      this.input.value = '';
      this.addItems(list || []);
      this.render();
    }
    render() {
      this.chips.textContent = '';
      this.items.forEach((it, i) => {
        const label = it.name ? `${it.name} <${it.address}>` : it.address;
        const chip = el('span', {
          class: 'cp-chip' + (it.valid ? '' : ' cp-chip-invalid'),
          'data-address': it.address,
          title: it.valid ? label : t('compose.invalidAddress', { value: it.address }),
        }, [
          el('span', { class: 'cp-chip-text', text: it.name || it.address }),
          el('button', {
            type: 'button',
            class: 'cp-chip-remove',
            'aria-label': t('compose.removeAddress', { address: it.address }),
            text: '×',
            onclick: (e) => { e.stopPropagation(); this.remove(i); },
          }),
        ]);
        this.chips.appendChild(chip);
      });
    }
    // Committed chips plus what is still being typed, for saving.
    values() {
      const pending = this.input.value.trim() ? splitAddresses(this.input.value).map(parseAddress) : [];
      return this.items.concat(pending);
    }
    // As strings ("Ann Lee <ann@example.com>"), the form the API documents and other views of
    // a draft (the shell's Drafts list) show as they are.
    valid() {
      return this.validItems().map(formatAddress);
    }
    validItems() {
      return this.values().filter((x) => x.valid);
    }
    invalid() {
      return this.values().filter((x) => !x.valid);
    }
  }

  // Stored draft fields are what a send takes: strings, {name, address} objects or lists.
  function toItems(v) {
    if (v == null) return [];
    const list = Array.isArray(v) ? v : [v];
    const out = [];
    for (const x of list) {
      if (typeof x === 'string') out.push(...splitAddresses(x).map(parseAddress));
      else if (x && x.address) out.push({ name: x.name || '', address: x.address, valid: validAddress(x.address) });
    }
    return out;
  }

  // ---- Reply recipients and subjects (docs/sending.md "Replies and forwards") ----------------

  const RE_PREFIX = /^\s*(re|aw|antw|sv|vs|odp|ynt|res|回复|答复|回覆|答覆|返信|답장)\s*(\[\d+\]|\(\d+\))?\s*[:：]\s*/i;
  const FWD_PREFIX = /^\s*(fwd|fw|wg|tr|rv|enc|doorst|vb|vl|转发|轉寄|转寄|転送|전달)\s*(\[\d+\]|\(\d+\))?\s*[:：]\s*/i;
  function prefixed(subject, mode) {
    let s = subject || '';
    const re = mode === 'forward' ? FWD_PREFIX : RE_PREFIX;
    while (re.test(s)) s = s.replace(re, '');
    return (mode === 'forward' ? 'Fwd: ' : 'Re: ') + s;
  }

  function replyRecipients(mode, msg, own) {
    const isOwn = (a) => a && own.some((o) => sameAddress(o, a.address));
    const fromUser = isOwn(msg.from);
    let to = [];
    let cc = [];
    if (mode === 'forward') return { to, cc };
    const replyTo = (msg.replyTo || []).filter((a) => a && a.address);
    if (fromUser) {
      to = (msg.to || []).slice();
    } else {
      to = replyTo.length ? replyTo.slice() : msg.from ? [msg.from] : [];
    }
    if (mode === 'replyAll') {
      if (!fromUser) to = to.concat(msg.to || []);
      cc = (msg.cc || []).slice();
    }
    const seen = new Set();
    const keep = (a) => {
      if (!a || !a.address || isOwn(a)) return false;
      const k = a.address.toLowerCase();
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    };
    to = to.filter(keep);
    cc = cc.filter(keep);
    if (!to.length && !cc.length && msg.from) to = [msg.from];
    return { to: to.map((a) => ({ name: a.name || '', address: a.address })), cc: cc.map((a) => ({ name: a.name || '', address: a.address })) };
  }

  // ---- Rich text ---------------------------------------------------------------------------

  // A toolbar for a contenteditable (shared with the mass-mailing panel).
  function toolbar(editor, prefix) {
    const run = (cmd, arg) => {
      editor.focus();
      document.execCommand(cmd, false, arg);
      editor.dispatchEvent(new Event('input', { bubbles: true }));
    };
    const button = (name, label, text, fn) =>
      el('button', { type: 'button', id: `${prefix}-fmt-${name}`, class: `cp-fmt cp-fmt-${name}`, title: label, 'aria-label': label, text, onmousedown: (e) => e.preventDefault(), onclick: fn });
    return el('div', { class: 'cp-toolbar', role: 'toolbar' }, [
      button('bold', t('compose.bold'), 'B', () => run('bold')),
      button('italic', t('compose.italic'), 'I', () => run('italic')),
      button('ul', t('compose.bulleted'), '•', () => run('insertUnorderedList')),
      button('ol', t('compose.numbered'), '1.', () => run('insertOrderedList')),
      button('link', t('compose.link'), t('compose.link'), () => {
        const url = window.prompt(t('compose.linkPrompt'), 'https://');
        if (!url || url === 'https://') return;
        // Only links a mail client will follow; no javascript: and friends.
        if (!/^(https?:|mailto:|tel:)/i.test(url.trim())) return;
        run('createLink', url.trim());
      }),
      button('quote', t('compose.quote'), '❝', () => run('formatBlock', 'blockquote')),
      button('clear', t('compose.clearFormat'), 'Tx', () => { run('removeFormat'); run('formatBlock', 'div'); }),
    ]);
  }

  function editorEmpty(editor) {
    return !editor.textContent.trim() && !editor.querySelector('img');
  }

  // ---- Compose -----------------------------------------------------------------------------

  let current = null; // the open compose window (one at a time)
  let uploadLimit = null; // bytes, once known (admin settings, or the server's 413 message)
  let limitAsked = false;

  // The smaller of what is known: the upload limit (from a 413) and the largest file a send
  // takes (mailGeneralSettings.maxAttachmentBytes, readable by administrators).
  function knowLimit(n) {
    if (n > 0) uploadLimit = uploadLimit ? Math.min(uploadLimit, n) : n;
  }

  function learnLimit() {
    if (limitAsked) return;
    limitAsked = true;
    // Only administrators may read the general settings; for others the limit is learned from
    // the first 413 the server answers.
    app()
      .api('mailGeneralSettings', 'get')
      .then((d) => knowLimit(d && Number(d.maxAttachmentBytes)))
      .catch(() => {});
  }

  class Compose {
    constructor(opts) {
      this.mode = opts.mode || 'new';
      this.source = opts.message || null;
      this.draftId = null;
      this.revision = 0;
      this.savedRevision = 0;
      this.changeSeq = 0;
      this.savedSeq = 0;
      this.saving = null;
      this.saveTimer = null;
      this.firstDirtyAt = 0;
      this.attachments = [];
      this.fromChosen = false;
      this.sending = false;
      this.aliases = [];
      this.signatures = [];
      this.templates = [];
      this.offerChecked = new Set();
      this.closed = false;
      const st = app().state || {};
      this.accountId = (this.source && this.source.accountId) || opts.accountId || st.accountId || (st.accounts && st.accounts[0] && st.accounts[0].id) || null;
      this.render();
    }

    render() {
      const root = document.getElementById('compose-root') || document.body;
      root.textContent = '';
      const changed = () => this.changed();
      this.to = new AddressField('cp-to', t('compose.to'), () => { changed(); this.offerDraft(); });
      this.cc = new AddressField('cp-cc', t('compose.cc'), changed);
      this.bcc = new AddressField('cp-bcc', t('compose.bcc'), changed);
      this.from = el('select', { id: 'cp-from', class: 'cp-select', 'aria-label': t('compose.from'), onchange: () => this.fromChanged() });
      this.subject = el('input', { id: 'cp-subject', type: 'text', class: 'cp-input', maxlength: '998', 'aria-label': t('compose.subject'), placeholder: t('compose.subject'), oninput: changed });
      this.body = el('div', { id: 'cp-body', class: 'cp-body', contenteditable: 'true', role: 'textbox', 'aria-multiline': 'true', 'aria-label': t('compose.body'), oninput: changed });
      this.signature = el('select', { id: 'cp-signature', class: 'cp-select', 'aria-label': t('compose.signature'), onchange: () => { this.showSignature(); changed(); } });
      this.signaturePreview = el('div', { id: 'cp-signature-preview', class: 'cp-signature-preview' });
      this.template = el('select', { id: 'cp-template', class: 'cp-select', 'aria-label': t('compose.template'), onchange: () => this.insertTemplate() });
      this.file = el('input', { id: 'cp-file', type: 'file', multiple: true, class: 'cp-file', onchange: () => { this.addFiles(this.file.files); this.file.value = ''; } });
      this.attachList = el('ul', { id: 'cp-attachments', class: 'cp-attachments' });
      this.error = el('div', { id: 'cp-error', class: 'cp-error', role: 'alert', hidden: true });
      this.status = el('span', { id: 'cp-status', class: 'cp-status', 'aria-live': 'polite' });
      this.offer = el('div', { id: 'cp-draft-offer', class: 'cp-draft-offer', hidden: true });
      this.sendButton = el('button', { id: 'cp-send', type: 'button', class: 'cp-primary', text: t('compose.send'), onclick: () => this.send() });
      const ccRow = el('div', { class: 'cp-row cp-row-cc', hidden: true }, [el('label', { for: 'cp-cc-input', text: t('compose.cc') }), this.cc.root]);
      const bccRow = el('div', { class: 'cp-row cp-row-bcc', hidden: true }, [el('label', { for: 'cp-bcc-input', text: t('compose.bcc') }), this.bcc.root]);
      this.ccRows = [ccRow, bccRow];
      const title = { new: 'compose.new', reply: 'compose.reply', replyAll: 'compose.replyAll', forward: 'compose.forward' }[this.mode] || 'compose.new';
      const notes = [];
      if (this.source && this.mode !== 'new') {
        notes.push(el('div', { id: 'cp-quote-note', class: 'cp-note', text: t(this.mode === 'forward' ? 'compose.forwardNote' : 'compose.quoteNote') }));
        const files = (this.source.attachments || []).filter((a) => !a.inline).map((a) => a.filename);
        if (this.mode === 'forward' && files.length) {
          notes.push(el('div', { id: 'cp-forwarded', class: 'cp-note', text: t('compose.forwardedFiles', { names: files.join(', ') }) }));
        }
      }
      this.dialog = el('section', { id: 'cp-dialog', class: 'cp-dialog cp-open', role: 'dialog', 'aria-labelledby': 'cp-title', 'data-mode': this.mode }, [
        el('header', { class: 'cp-header' }, [
          el('h2', { id: 'cp-title', text: t(title) }),
          this.status,
          el('button', { id: 'cp-minimize', type: 'button', class: 'cp-icon', title: t('compose.minimize'), 'aria-label': t('compose.minimize'), text: '–', onclick: () => {
            // Folded away, the window leaves the keyboard to the shell again.
            const folded = this.dialog.classList.toggle('cp-minimized');
            this.dialog.classList.toggle('cp-open', !folded);
          } }),
          el('button', { id: 'cp-close', type: 'button', class: 'cp-icon', title: t('compose.close'), 'aria-label': t('compose.close'), text: '×', onclick: () => this.close() }),
        ]),
        el('div', { class: 'cp-content' }, [
          this.offer,
          el('div', { class: 'cp-row' }, [el('label', { for: 'cp-from', text: t('compose.from') }), this.from]),
          el('div', { class: 'cp-row' }, [
            el('label', { for: 'cp-to-input', text: t('compose.to') }),
            this.to.root,
            el('button', { id: 'cp-show-cc', type: 'button', class: 'cp-link', text: t('compose.showCcBcc'), onclick: (e) => { this.ccRows.forEach((r) => (r.hidden = false)); e.target.hidden = true; } }),
          ]),
          ccRow,
          bccRow,
          el('div', { class: 'cp-row' }, [this.subject]),
          el('div', { class: 'cp-editor' }, [
            el('div', { class: 'cp-tools' }, [toolbar(this.body, 'cp'), this.template]),
            this.body,
          ]),
          ...notes,
          el('div', { class: 'cp-row cp-signature-row' }, [el('label', { for: 'cp-signature', text: t('compose.signature') }), this.signature]),
          this.signaturePreview,
          this.attachList,
          this.error,
        ]),
        el('footer', { class: 'cp-footer' }, [
          this.sendButton,
          el('label', { class: 'cp-attach', title: t('compose.attach') }, [this.file, el('span', { text: '+ ' + t('compose.attach') })]),
          el('span', { class: 'cp-spacer' }),
          el('button', { id: 'cp-discard', type: 'button', class: 'cp-danger', text: t('compose.discard'), onclick: () => this.discard() }),
        ]),
        el('div', { class: 'cp-drop', text: t('compose.dropHere') }),
      ]);
      this.dialog.addEventListener('keydown', (e) => {
        if ((e.ctrlKey || e.metaKey) && e.key === 'Enter') {
          e.preventDefault();
          this.send();
        } else if (e.key === 'Escape') {
          e.preventDefault();
          this.close();
        }
        // Keys typed here are the user's text, not the shell's shortcuts.
        e.stopPropagation();
      });
      let depth = 0;
      this.dialog.addEventListener('dragenter', (e) => {
        if (!hasFiles(e)) return;
        e.preventDefault();
        depth++;
        this.dialog.classList.add('cp-dragging');
      });
      this.dialog.addEventListener('dragover', (e) => {
        if (!hasFiles(e)) return;
        e.preventDefault();
        e.dataTransfer.dropEffect = 'copy';
      });
      this.dialog.addEventListener('dragleave', () => {
        depth = Math.max(0, depth - 1);
        if (!depth) this.dialog.classList.remove('cp-dragging');
      });
      this.dialog.addEventListener('drop', (e) => {
        if (!hasFiles(e)) return;
        e.preventDefault();
        depth = 0;
        this.dialog.classList.remove('cp-dragging');
        this.addFiles(e.dataTransfer.files);
      });
      root.appendChild(this.dialog);
    }

    // Loads aliases, signatures and templates, then fills the fields for the mode.
    async init(draft) {
      if (!this.accountId && !draft) {
        this.showError(t('compose.noAccount'));
        this.sendButton.disabled = true;
        return;
      }
      learnLimit();
      const [aliases, sigs, tpls] = await Promise.all([
        app().api('mailAliases', 'list', { params: this.source || draft ? { accountId: (draft || this.source).accountId } : {} }).catch(() => []),
        app().api('mailSignatures', 'list', { params: { pageSize: 200 } }).catch(() => []),
        app().api('mailTemplates', 'list', { params: { pageSize: 200 } }).catch(() => []),
      ]);
      this.aliases = listOf(aliases);
      this.signatures = listOf(sigs);
      this.templates = listOf(tpls);
      this.fillFrom();
      this.fillSignatures();
      this.fillTemplates();
      if (draft) {
        this.load(draft);
      } else if (this.source && this.mode !== 'new') {
        const own = this.aliases.map((a) => a.address).concat(accountEmails());
        const r = replyRecipients(this.mode, this.source, own);
        this.to.set(r.to);
        this.cc.set(r.cc);
        if (r.cc.length) this.ccRows.forEach((row) => (row.hidden = false));
        this.subject.value = prefixed(this.source.subject, this.mode);
        this.selectIdentity();
        this.offerDraft();
      }
      this.showSignature();
      // What was filled in for the mode is not a change of the user's: no draft for it yet.
      clearTimeout(this.saveTimer);
      if (!draft) {
        this.savedSeq = this.changeSeq;
        this.firstDirtyAt = 0;
      }
      if (this.mode === 'new' && !draft) this.to.input.focus();
      else placeCaretAtStart(this.body);
      this.dialog.dataset.ready = '1';
    }

    fillFrom() {
      this.from.textContent = '';
      const accounts = (app().state && app().state.accounts) || [];
      const byAccount = new Map();
      for (const a of this.aliases) {
        if (!byAccount.has(a.accountId)) byAccount.set(a.accountId, []);
        byAccount.get(a.accountId).push(a);
      }
      // A reply or forward stays in its mailbox: only that mailbox's addresses are offered.
      const only = this.source && this.mode !== 'new' ? this.source.accountId : null;
      for (const [accountId, list] of byAccount) {
        if (only && accountId !== only) continue;
        const acc = accounts.find((x) => x.id === accountId);
        const group = byAccount.size > 1 ? el('optgroup', { label: acc ? acc.email : String(accountId) }) : this.from;
        for (const a of list) {
          const label = a.name ? `${a.name} <${a.address}>` : a.address;
          group.appendChild(el('option', { value: `${accountId}|${a.address}`, text: label }));
        }
        if (group !== this.from) this.from.appendChild(group);
      }
      // The current mailbox's default alias first.
      const def = this.aliases.find((a) => a.accountId === this.accountId && a.isDefault) || this.aliases.find((a) => a.accountId === this.accountId);
      if (def) this.from.value = `${def.accountId}|${def.address}`;
      else if (this.from.options.length) this.fromChanged(true);
    }

    // A reply keeps the address the original was sent to (the server does the same when `from`
    // is left out, so this only shows it).
    selectIdentity() {
      const m = this.source;
      if (!m) return;
      const addrs = [].concat(m.to || [], m.cc || [], m.bcc || [], m.from ? [m.from] : []);
      const hit = this.aliases.find((a) => a.accountId === m.accountId && addrs.some((x) => x && sameAddress(x.address, a.address)));
      if (hit) this.from.value = `${hit.accountId}|${hit.address}`;
    }

    selectedFrom() {
      const v = this.from.value || '';
      const i = v.indexOf('|');
      if (i < 0) return null;
      const accountId = Number(v.slice(0, i));
      const address = v.slice(i + 1);
      const alias = this.aliases.find((a) => a.accountId === accountId && sameAddress(a.address, address));
      return { accountId, address, name: alias ? alias.name : '' };
    }

    fromChanged(quiet) {
      const f = this.selectedFrom();
      if (!f) return;
      if (!quiet) this.fromChosen = true;
      if (f.accountId !== this.accountId) {
        this.accountId = f.accountId;
        // A draft stays with its mailbox: moving to another one starts a new draft.
        if (this.draftId) {
          const old = this.draftId;
          this.draftId = null;
          this.revision = 0;
          this.savedRevision = 0;
          app().api('mailDrafts', 'destroy', { params: { filterByTk: old } }).catch(() => {});
        }
      }
      if (!quiet) this.changed();
    }

    fillSignatures() {
      this.signature.textContent = '';
      this.signature.appendChild(el('option', { value: 'none', text: t('compose.noSignature') }));
      let def = 'none';
      for (const s of this.signatures) {
        this.signature.appendChild(el('option', { value: String(s.id), text: s.isDefault ? t('compose.defaultMark', { name: s.name }) : s.name }));
        if (s.isDefault) def = String(s.id);
      }
      this.signature.value = def;
    }

    showSignature() {
      const s = this.signatures.find((x) => String(x.id) === this.signature.value);
      // Signatures are cleaned by the server on save (send::signature allow-list).
      this.signaturePreview.innerHTML = s ? s.html : '';
      this.signaturePreview.hidden = !s;
    }

    fillTemplates() {
      this.template.textContent = '';
      this.template.appendChild(el('option', { value: '', text: t('compose.template') }));
      for (const tpl of this.templates) this.template.appendChild(el('option', { value: String(tpl.id), text: tpl.name }));
      this.template.hidden = !this.templates.length;
    }

    async insertTemplate() {
      const id = this.template.value;
      this.template.value = '';
      if (!id) return;
      const first = this.to.validItems()[0];
      const from = this.selectedFrom();
      const values = { templateId: Number(id) };
      if (first) values.recipient = { name: first.name || '', email: first.address };
      if (from) values.user = { nickname: from.name || '', email: from.address };
      try {
        const r = await app().api('mailTemplates', 'preview', { values });
        if (r.subject && !this.subject.value.trim()) this.subject.value = r.subject;
        // The rendered template goes where the caret is (or at the end); the signature is
        // outside the editor, so a template can never replace it.
        insertHtmlAtCaret(this.body, r.html || esc(r.text || '').replace(/\n/g, '<br>'));
        if (r.missingVariables && r.missingVariables.length) {
          toast(t('compose.templateMissing', { names: r.missingVariables.join(', ') }), 'info');
        }
        this.changed();
      } catch (e) {
        this.showError(e.message);
      }
    }

    // ---- Drafts ----

    fields() {
      const f = {
        to: this.to.valid(),
        cc: this.cc.valid(),
        bcc: this.bcc.valid(),
        subject: this.subject.value.replace(/[\r\n]+/g, ' '),
        html: editorEmpty(this.body) ? '' : this.body.innerHTML,
        attachments: this.attachments.filter((a) => a.uploadId).map((a) => a.uploadId),
        signature: this.signature.value === 'none' ? false : Number(this.signature.value),
      };
      if (this.source && this.mode !== 'new') {
        f.mode = this.mode;
        f.sourceMessageId = this.source.id;
      }
      const from = this.selectedFrom();
      if (this.fromChosen && from) f.from = from.name ? { name: from.name, address: from.address } : { address: from.address };
      return f;
    }

    changed() {
      if (this.closed) return;
      this.changeSeq++;
      this.hideError();
      const now = Date.now();
      if (!this.firstDirtyAt) this.firstDirtyAt = now;
      clearTimeout(this.saveTimer);
      // Saved after a quiet moment, and at least every SAVE_MAX_WAIT_MS while typing goes on.
      const wait = Math.max(0, Math.min(SAVE_DELAY_MS, this.firstDirtyAt + SAVE_MAX_WAIT_MS - now));
      this.saveTimer = setTimeout(() => this.save().catch(() => {}), wait);
    }

    dirty() {
      return this.changeSeq > this.savedSeq;
    }

    // Saves the current content as the next revision; one save at a time, the latest wins.
    // `force` makes a draft even without content (a send needs one).
    async save(force) {
      clearTimeout(this.saveTimer);
      this.saveTimer = null;
      if (this.saving) {
        await this.saving.catch(() => {});
        if (!this.dirty() && !(force && !this.draftId)) return;
      }
      if ((!this.dirty() && !(force && !this.draftId)) || !this.accountId) return;
      const seq = this.changeSeq;
      const values = this.fields();
      // Recipients alone are not worth a draft: one is made once there is something written.
      if (!this.draftId && !force && !values.subject.trim() && !values.html && !values.attachments.length) return;
      this.firstDirtyAt = 0;
      this.setStatus(t('compose.saving'));
      const run = (async () => {
        let d;
        if (!this.draftId) {
          this.revision = 1;
          d = await app().api('mailDrafts', 'create', { values: Object.assign({ accountId: this.accountId, revision: 1 }, values) });
          this.draftId = d.id;
          this.offerChecked.add(d.id);
        } else {
          this.revision += 1;
          d = await app().api('mailDrafts', 'update', { params: { filterByTk: this.draftId }, values: Object.assign({ revision: this.revision }, values) });
          // Another tab saved a later revision, so this one was not stored: save again above it
          // (last write wins, and this window is the one being written in).
          if (d && d.revision > this.revision) {
            this.revision = d.revision;
            this.changeSeq++;
            return;
          }
        }
        this.savedRevision = this.revision;
        this.savedSeq = Math.max(this.savedSeq, seq);
        this.setStatus(t('compose.saved', { time: timeOf(d && d.updatedAt) }));
      })();
      this.saving = run;
      try {
        await run;
      } catch (e) {
        this.setStatus(t('compose.notSaved', { message: e.message }), true);
        throw e;
      } finally {
        if (this.saving === run) this.saving = null;
      }
      if (this.dirty() && !this.closed) this.changed();
    }

    // Offers the latest draft for the same sender and recipients, once per set of recipients,
    // while this compose has not saved one itself.
    async offerDraft() {
      if (this.draftId || !this.accountId) return;
      const to = this.to.validItems().map((a) => a.address);
      if (!to.length) return;
      const key = to.map((a) => a.toLowerCase()).sort().join(',');
      if (this.offerChecked.has(key)) return;
      this.offerChecked.add(key);
      const params = { accountId: this.accountId, to: to.join(','), pageSize: 5 };
      const from = this.selectedFrom();
      if (from) params.from = from.address;
      let list;
      try {
        list = listOf(await app().api('mailDrafts', 'list', { params }));
      } catch (e) {
        return;
      }
      const srcId = this.source && this.mode !== 'new' ? this.source.id : null;
      const found = list.find((d) => d.id !== this.draftId && (!srcId || d.sourceMessageId === srcId || d.sourceMessageId == null));
      if (!found || this.closed) return;
      this.offer.textContent = '';
      this.offer.appendChild(el('span', { text: t('compose.draftOffer', { time: timeOf(found.updatedAt) }) + ' ' }));
      this.offer.appendChild(el('button', { id: 'cp-restore', type: 'button', class: 'cp-link', text: t('compose.restore'), onclick: () => { this.offer.hidden = true; this.restore(found.id); } }));
      this.offer.appendChild(el('button', { id: 'cp-ignore', type: 'button', class: 'cp-link', text: t('compose.ignore'), onclick: () => { this.offer.hidden = true; } }));
      this.offer.hidden = false;
    }

    async restore(id) {
      try {
        clearTimeout(this.saveTimer);
        if (this.saving) await this.saving.catch(() => {});
        const d = await app().api('mailDrafts', 'get', { params: { filterByTk: id } });
        // The draft this window may have started meanwhile gives way to the restored one.
        if (this.draftId && this.draftId !== d.id) {
          const mine = this.draftId;
          app().api('mailDrafts', 'destroy', { params: { filterByTk: mine } }).catch(() => {});
        }
        this.load(d);
      } catch (e) {
        this.showError(e.message);
      }
    }

    // Fills the window from a stored draft and continues it (same id, next revision).
    load(d) {
      this.draftId = d.id;
      this.revision = d.revision || 1;
      this.savedRevision = this.revision;
      this.accountId = d.accountId;
      this.to.set(toItems(d.to));
      this.cc.set(toItems(d.cc));
      this.bcc.set(toItems(d.bcc));
      if (this.cc.items.length || this.bcc.items.length) this.ccRows.forEach((r) => (r.hidden = false));
      this.subject.value = d.subject || '';
      if (d.html) this.body.innerHTML = d.html;
      else this.body.textContent = d.text || '';
      const from = Array.isArray(d.from) ? d.from[0] : d.from;
      const fromItem = toItems(from)[0];
      if (fromItem) {
        const v = `${d.accountId}|${fromItem.address}`;
        if ([...this.from.options].some((o) => o.value === v)) this.from.value = v;
        else {
          this.from.appendChild(el('option', { value: v, text: fromItem.name ? `${fromItem.name} <${fromItem.address}>` : fromItem.address }));
          this.from.value = v;
        }
      }
      if (d.signature === false) this.signature.value = 'none';
      else if (typeof d.signature === 'number' && [...this.signature.options].some((o) => o.value === String(d.signature))) this.signature.value = String(d.signature);
      this.showSignature();
      this.attachments = [];
      for (const a of d.attachments || []) {
        const uploadId = typeof a === 'object' && a ? a.uploadId : a;
        const entry = { uploadId, filename: '#' + uploadId, size: null, state: 'done' };
        this.attachments.push(entry);
        app()
          .api('mailUploads', 'get', { params: { filterByTk: uploadId } })
          .then((u) => { entry.filename = u.filename; entry.size = u.size; this.renderAttachments(); })
          .catch((e) => { entry.state = 'error'; entry.uploadId = null; entry.message = e.message; this.renderAttachments(); });
      }
      this.renderAttachments();
      this.savedSeq = this.changeSeq;
      this.setStatus(t('compose.saved', { time: timeOf(d.updatedAt) }));
    }

    // ---- Attachments ----

    addFiles(files) {
      for (const file of Array.from(files || [])) {
        const entry = { uploadId: null, filename: file.name, size: file.size, state: 'uploading' };
        this.attachments.push(entry);
        if (uploadLimit && file.size > uploadLimit) {
          entry.state = 'error';
          entry.message = t('compose.tooLarge', { name: file.name, size: formatSize(file.size), limit: formatSize(uploadLimit) });
          this.showError(entry.message);
          continue;
        }
        const form = new FormData();
        form.append('file', file, file.name);
        app()
          .apiForm('mailAttachments', 'upload', form, {})
          .then((u) => {
            entry.uploadId = u.id;
            entry.filename = u.filename || file.name;
            entry.size = u.size;
            entry.state = 'done';
            this.renderAttachments();
            this.changed();
          })
          .catch((e) => {
            entry.state = 'error';
            if (e.status === 413) {
              const m = /(\d+) bytes/.exec(e.message || '');
              if (m) knowLimit(Number(m[1]));
              entry.message = uploadLimit
                ? t('compose.tooLarge', { name: file.name, size: formatSize(file.size), limit: formatSize(uploadLimit) })
                : t('compose.uploadFailed', { name: file.name, message: e.message });
            } else {
              entry.message = t('compose.uploadFailed', { name: file.name, message: e.message });
            }
            this.showError(entry.message);
            this.renderAttachments();
          });
      }
      this.renderAttachments();
    }

    renderAttachments() {
      this.attachList.textContent = '';
      this.attachments.forEach((a) => {
        const li = el('li', { class: 'cp-att cp-att-' + a.state, 'data-name': a.filename }, [
          el('span', { class: 'cp-att-name', text: a.filename }),
          el('span', { class: 'cp-att-size', text: a.state === 'uploading' ? t('compose.uploading') : formatSize(a.size) }),
          a.state === 'error' ? el('span', { class: 'cp-att-error', text: a.message || '' }) : null,
          el('button', {
            type: 'button',
            class: 'cp-att-remove',
            'aria-label': t('compose.removeAttachment', { name: a.filename }),
            text: '×',
            onclick: () => {
              const at = this.attachments.indexOf(a);
              if (at >= 0) this.attachments.splice(at, 1);
              if (a.uploadId) app().api('mailUploads', 'destroy', { params: { filterByTk: a.uploadId } }).catch(() => {});
              this.renderAttachments();
              if (a.uploadId) this.changed();
              if (!this.attachments.some((x) => x.state === 'error')) this.hideError();
            },
          }),
        ]);
        this.attachList.appendChild(li);
      });
    }

    // ---- Send ----

    async send() {
      if (this.sending) return; // a second click while the first is on its way
      this.to.commit();
      this.cc.commit();
      this.bcc.commit();
      const bad = [].concat(this.to.invalid(), this.cc.invalid(), this.bcc.invalid());
      if (bad.length) return this.showError(t('compose.fixAddresses') + ' ' + bad.map((b) => t('compose.invalidAddress', { value: b.address })).join('; '));
      if (!this.to.valid().length && !this.cc.valid().length && !this.bcc.valid().length) return this.showError(t('compose.noRecipients'));
      if (this.attachments.some((a) => a.state === 'uploading')) return this.showError(t('compose.waitUploads'));
      if (this.attachments.some((a) => a.state === 'error')) return this.showError(t('compose.removeFailed'));
      this.sending = true;
      this.sendButton.disabled = true;
      this.sendButton.textContent = t('compose.sending');
      this.dialog.classList.add('cp-busy');
      try {
        await this.save(true);
        if (this.dirty()) await this.save(true);
        const answer = await this.sendDraft();
        this.closed = true;
        clearTimeout(this.saveTimer);
        toast(t('compose.sent'), 'info');
        this.remove();
        if (app().refresh) app().refresh();
        return answer;
      } catch (e) {
        this.showError(t('compose.sendFailed', { message: e.message }));
      } finally {
        this.sending = false;
        if (!this.closed) {
          this.sendButton.disabled = false;
          this.sendButton.textContent = t('compose.send');
          this.dialog.classList.remove('cp-busy');
        }
      }
    }

    // The key is the draft and its revision (the server's default), so repeating this call
    // for the same content answers the first send's result.
    async sendDraft() {
      for (let attempt = 0; ; attempt++) {
        try {
          return await app().api('mailDrafts', 'send', { params: { filterByTk: this.draftId }, values: {} });
        } catch (e) {
          // The same send is still being made (a retry after a lost answer): ask again.
          if (e.code === 'SEND_IN_PROGRESS' && attempt < 30) {
            await new Promise((r) => setTimeout(r, 1000));
            continue;
          }
          throw e;
        }
      }
    }

    async close() {
      if (this.closed) return;
      this.to.commit();
      const hadDraft = this.draftId || this.dirty();
      try {
        await this.save();
      } catch (e) {
        // Not saved: keep the window open with the reason shown.
        this.showError(t('compose.notSaved', { message: e.message }));
        return;
      }
      this.closed = true;
      this.remove();
      if (hadDraft && this.draftId) {
        toast(t('compose.draftKept'), 'info');
        if (app().refresh) app().refresh();
      }
    }

    async discard() {
      if (this.dirty() || this.draftId) {
        if (!window.confirm(t('compose.discardConfirm'))) return;
      }
      this.closed = true;
      clearTimeout(this.saveTimer);
      if (this.saving) await this.saving.catch(() => {});
      const id = this.draftId;
      this.remove();
      for (const a of this.attachments) {
        if (a.uploadId) app().api('mailUploads', 'destroy', { params: { filterByTk: a.uploadId } }).catch(() => {});
      }
      if (id) {
        try {
          await app().api('mailDrafts', 'destroy', { params: { filterByTk: id } });
          toast(t('compose.discarded'), 'info');
          if (app().refresh) app().refresh();
        } catch (e) {
          toast(e.message, 'error');
        }
      }
    }

    remove() {
      clearTimeout(this.saveTimer);
      if (this.dialog && this.dialog.parentNode) this.dialog.parentNode.removeChild(this.dialog);
      if (current === this) current = null;
    }

    setStatus(text, isError) {
      this.status.textContent = text;
      this.status.classList.toggle('cp-status-error', !!isError);
    }
    showError(msg) {
      this.error.textContent = msg;
      this.error.hidden = false;
    }
    hideError() {
      if (this.attachments.some((a) => a.state === 'error')) return;
      this.error.hidden = true;
      this.error.textContent = '';
    }
  }

  function hasFiles(e) {
    return e.dataTransfer && Array.from(e.dataTransfer.types || []).includes('Files');
  }
  function listOf(d) {
    if (Array.isArray(d)) return d;
    if (d && Array.isArray(d.data)) return d.data;
    return [];
  }
  function accountEmails() {
    return ((app().state && app().state.accounts) || []).map((a) => a.email).filter(Boolean);
  }
  function placeCaretAtStart(editor) {
    editor.focus();
    const sel = window.getSelection();
    if (!sel) return;
    const r = document.createRange();
    r.setStart(editor, 0);
    r.collapse(true);
    sel.removeAllRanges();
    sel.addRange(r);
  }
  function insertHtmlAtCaret(editor, html) {
    const sel = window.getSelection();
    const inside = sel && sel.rangeCount && editor.contains(sel.getRangeAt(0).commonAncestorContainer);
    if (!inside) {
      editor.focus();
      const r = document.createRange();
      r.selectNodeContents(editor);
      r.collapse(false);
      sel.removeAllRanges();
      sel.addRange(r);
    }
    document.execCommand('insertHTML', false, html);
  }

  // Opens a compose window; an open one is saved and closed first (one at a time).
  async function open(opts) {
    opts = opts || {};
    if (current) await current.close();
    if (current) return current; // it could not be saved: keep it
    const c = new Compose(opts);
    current = c;
    await c.init(null);
    return c;
  }

  // A draft from the Drafts folder: a mailDrafts record ({id, revision, …}), or a synced
  // provider draft (a mailMessages row with draft: true) whose local record is looked up by
  // its provider draft id, else opened as a new message with its content.
  async function openDraft(draft) {
    if (!draft) return null;
    if (current) await current.close();
    if (current) return current;
    let record = null;
    try {
      if (draft.revision != null && draft.id != null) {
        record = await app().api('mailDrafts', 'get', { params: { filterByTk: draft.id } });
      } else if (draft.localDraftId != null) {
        record = await app().api('mailDrafts', 'get', { params: { filterByTk: draft.localDraftId } });
      }
    } catch (e) {
      toast(e.message, 'error');
      return null;
    }
    if (!record) {
      // A provider draft made elsewhere: continue it as a new local draft.
      record = {
        accountId: draft.accountId,
        to: draft.to,
        cc: draft.cc,
        bcc: draft.bcc,
        subject: draft.subject,
        html: draft.html,
        text: draft.textBody,
      };
    }
    // A reply or forward draft keeps its source (the server quotes it on send).
    const source = record.sourceMessageId && record.mode ? { id: record.sourceMessageId, accountId: record.accountId } : null;
    const c = new Compose({ mode: source ? record.mode : 'new', accountId: record.accountId, message: source });
    current = c;
    if (record.id != null) {
      await c.init(record);
    } else {
      await c.init(null);
      c.load(Object.assign({ id: null, revision: 0 }, record));
      c.draftId = null;
      c.changed();
    }
    return c;
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
  // Leaving the page or the tab: save what is pending now rather than in two seconds.
  document.addEventListener('visibilitychange', () => {
    if (document.hidden && current && current.dirty()) current.save().catch(() => {});
  });

  window.MailCompose = {
    open,
    openDraft,
    current: () => current,
    // Shared with mass.js.
    _toolbar: toolbar,
    _validAddress: validAddress,
    _parseAddress: parseAddress,
    _splitAddresses: splitAddresses,
    _formatSize: formatSize,
    _el: el,
    _t: t,
    _register: register,
  };
})();
