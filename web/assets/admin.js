// @ts-check
// The county administrator's page (`/admin`): towns, villages (村 or 社区), windows with the
// matters each takes, the matter catalog, staff accounts and the village rooms' kiosk devices.
// One section per kind (`admin-section`, `data-kind`), each a table of its items (disabled ones
// greyed, 已停用) with the form of the item picked beside it, never over it: 新建, 保存, 停用/启用,
// 删除 after a confirmation (an item something refers to cannot be deleted: the server answers
// 409 `in_use` and the page offers 改为停用). Every change takes effect on the running server at
// once (the API of docs/admin.md). Every action's result is said in the status line.
import { api } from './api.js';
import { showSetup, signedInStaff } from './staffpage.js';
import { $, $$, STAFF_TOKEN_KEY, el, fill, forgetToken, goToLogin, showView, takeToken } from './common.js';

/**
 * The rows of the administration API.
 * @typedef {{ id: number, name: string, any_window: boolean, disabled: boolean }} Town
 * @typedef {{ id: number, town_id: number, name: string, kind: string, disabled: boolean }} Village
 * @typedef {{ id: number, town_id: number, name: string, kind: string, derive_matters: boolean,
 *   matter_ids: number[], disabled: boolean }} Window
 * @typedef {{ id: number, code: string, name: string, plain_name: string, department: string,
 *   window_kind: string, required_papers: string[], needs_signoff: boolean, village_can_finish: boolean,
 *   keywords: string[], disabled: boolean }} Matter
 * @typedef {{ id: number, username: string, display_name: string, role: string, town_id: ?number,
 *   window_id: ?number, disabled: boolean, must_change_password: boolean, last_login_ms: ?number }} User
 * @typedef {{ id: number, village_id: number, name: string, disabled: boolean, enrolled: boolean,
 *   last_seen_ms: ?number, token_expires_at_ms: ?number, enrolment: ?{ expires_at_ms: number } }} Kiosk
 * @typedef {{ id: number, disabled: boolean }} Item the fields every kind has
 * @typedef {'towns' | 'villages' | 'windows' | 'matters' | 'users' | 'kiosks'} Kind
 * @typedef {{ node: HTMLElement, read: () => object }} Form a form and what it would send
 *   (`read` throws an Error whose message says in Chinese what is missing)
 */

/** @type {Kind[]} */
const KINDS = ['towns', 'villages', 'windows', 'matters', 'users', 'kiosks'];

const WINDOW_KIND = { comprehensive: '综合', civil_affairs: '民政', social_security: '社保', custom: '自定义' };
const VILLAGE_KIND = { village: '村', community: '社区' };
const ROLE = {
  approver: '窗口办理人员',
  chief: '窗口负责人(一审一核)',
  dispatcher: '镇调度(群呼)',
  supervisor: '督查人员',
  admin: '县级管理员',
};

// The kind in the address (`/admin#users`) is read before the token is taken: that clears the fragment.
const kindAtStart = kindFromAddress();
const token = takeToken(STAFF_TOKEN_KEY);

const state = {
  /** @type {any} */
  me: null,
  county: { name: '', code: '' },
  /** @type {Town[]} */
  towns: [],
  /** @type {Village[]} */
  villages: [],
  /** @type {Window[]} */
  windows: [],
  /** @type {Matter[]} */
  matters: [],
  /** @type {User[]} */
  users: [],
  /** @type {Kiosk[]} */
  kiosks: [],
  /** @type {Kind} */
  kind: 'towns',
  /** The town filter: a town id, or null for every town. */
  /** @type {?number} */
  town: null,
  /** The item whose form is shown: its id, 'new' for a new one, or null. */
  /** @type {number | 'new' | null} */
  selected: null,
  /** A temporary password to show once (for the user `userId`), until another item is picked. */
  /** @type {?{ userId: number, password: string, reset: boolean }} */
  password: null,
  /** The enrolment code just issued (for `kioskId`), shown until another item is picked. */
  /** @type {?{ kioskId: number, code: string, expires_at_ms: number, qr_svg: string }} */
  enrolment: null,
  /** The refusal of the last delete (409 in_use) of the selected item, shown in its form. */
  /** @type {?string} */
  inUse: null,
  busy: false,
};

/** For tests and the console: the page's state. */
// @ts-ignore: the page's hook for tests
window.__cunneng = { state };

// ---- small helpers ------------------------------------------------------------------------

/** @param {string} text @param {'ok' | 'error' | 'info'} [kind] */
function say(text, kind = 'ok') {
  const line = $('#admin-status');
  line.dataset.kind = kind;
  // A fresh text node each time, so that screen readers announce a repeated message too.
  fill(line, text);
}

const CHINA = 'Asia/Shanghai';
const timeFormat = new Intl.DateTimeFormat('zh-CN', { timeZone: CHINA, month: 'long', day: 'numeric', hour: '2-digit', minute: '2-digit', hour12: false });
/** "12月7日 10:30" of Unix ms. */
const timeOf = (/** @type {number} */ ms) => timeFormat.format(new Date(ms));

/** "刚刚", "5 分钟前", "3 小时前", "2 天前" (with the time as a tooltip); "从未" of nothing. */
function ago(/** @type {?number | undefined} */ ms) {
  if (ms === null || ms === undefined) return el('span', { class: 'muted' }, '从未');
  const secs = Math.max(0, Math.round((Date.now() - ms) / 1000));
  let text;
  if (secs < 60) text = '刚刚';
  else if (secs < 3600) text = `${Math.floor(secs / 60)} 分钟前`;
  else if (secs < 86_400) text = `${Math.floor(secs / 3600)} 小时前`;
  else text = `${Math.floor(secs / 86_400)} 天前`;
  return el('time', { datetime: new Date(ms).toISOString(), title: timeOf(ms) }, text);
}

/** "1234-5678" of an enrolment code's digits. */
function fourFour(/** @type {string} */ code) {
  const digits = String(code).replace(/\D/g, '');
  return digits.length === 8 ? `${digits.slice(0, 4)}-${digits.slice(4)}` : String(code);
}

const townName = (/** @type {?number | undefined} */ id) => state.towns.find((t) => t.id === id)?.name ?? '';
const villageOf = (/** @type {number} */ id) => state.villages.find((v) => v.id === id);
const windowOf = (/** @type {?number | undefined} */ id) => state.windows.find((w) => w.id === id);

/** A tag: 已停用 for a disabled item. */
const disabledTag = () => el('span', { class: 'tag off', testid: 'admin-disabled-tag' }, '已停用');

/** A labelled field: `label` above `control` (and a hint below). */
function field(/** @type {string} */ label, /** @type {HTMLElement} */ control, /** @type {string} */ hint = '') {
  return el('label', { class: 'admin-field' }, el('span', { class: 'field-label' }, label), control, hint ? el('span', { class: 'hint' }, hint) : null);
}

/** A text input named `name`. */
function textInput(/** @type {string} */ name, /** @type {string} */ value, /** @type {object} */ attrs = {}) {
  const input = el('input', { type: 'text', name, autocomplete: 'off', ...attrs });
  input.value = value ?? '';
  return input;
}

/** A checkbox with its words beside it. */
function checkbox(/** @type {string} */ name, /** @type {boolean} */ checked, /** @type {string} */ label, /** @type {string} */ hint = '') {
  const box = el('input', { type: 'checkbox', name });
  box.checked = !!checked;
  return el('label', { class: 'admin-check' }, box, el('span', {}, el('strong', {}, label), hint ? el('span', { class: 'hint' }, hint) : null));
}

/** A select of `options` ([value, text, disabled?]), `value` chosen. */
function select(/** @type {string} */ name, /** @type {[string, string, boolean?][]} */ options, /** @type {string} */ value) {
  const s = el('select', { name }, ...options.map(([v, text, off]) => el('option', { value: v, disabled: !!off }, text)));
  s.value = value;
  return s;
}

/** The value of the control named `name` in `root`. */
function valueOf(/** @type {HTMLElement} */ root, /** @type {string} */ name) {
  const control = root.querySelector(`[name="${name}"]`);
  return control ? String(/** @type {any} */ (control).value ?? '').trim() : '';
}
function checkedOf(/** @type {HTMLElement} */ root, /** @type {string} */ name) {
  return !!(/** @type {any} */ (root.querySelector(`[name="${name}"]`))?.checked);
}

/** Throws the Chinese message when `ok` is false. */
function need(/** @type {boolean} */ ok, /** @type {string} */ message) {
  if (!ok) throw new Error(message);
}

/** Town options: every town (disabled ones marked), `first` before them. */
function townOptions(/** @type {[string, string][]} */ first = []) {
  return /** @type {[string, string, boolean?][]} */ ([...first, ...state.towns.map((t) => [String(t.id), t.disabled ? `${t.name}(已停用)` : t.name])]);
}

// ---- the kinds ----------------------------------------------------------------------------

/**
 * What the page knows of each kind: its words, its table and its form.
 * @typedef {{ title: string, noun: string, about: string, items: () => Item[],
 *   heads: string[], cells: (item: any) => any[], form: (item: any) => Form,
 *   label: (item: any) => string, deletable: boolean }} KindSpec
 */

/** @type {Record<Kind, KindSpec>} */
const SPEC = {
  towns: {
    title: '乡镇',
    noun: '乡镇',
    about: '本县的乡镇(镇便民服务中心)。开启“无差别受理”的镇,来电不分事项进全镇一个队列,哪个窗口空闲都可以接。',
    items: () => state.towns,
    heads: ['名称', '无差别受理', '村/社区', '窗口', '状态'],
    cells: (/** @type {Town} */ t) => [
      t.name,
      t.any_window ? el('span', { class: 'tag on' }, '已开启') : '未开启',
      String(state.villages.filter((v) => v.town_id === t.id).length),
      String(state.windows.filter((w) => w.town_id === t.id).length),
      t.disabled ? disabledTag() : '在用',
    ],
    label: (/** @type {Town} */ t) => t.name,
    deletable: true,
    form: (/** @type {Town | null} */ t) => {
      const node = el('div', { class: 'admin-fields' },
        field('乡镇名称', textInput('name', t?.name ?? '', { placeholder: '例如 昭化镇', maxlength: 40 })),
        checkbox('any_window', t?.any_window ?? false, '无差别受理(无差别综合受理)',
          '开启后,村里呼叫本镇的任何事项都进同一个队列,本镇任何一个空闲窗口都可以接听办理;关闭时按事项进对应窗口的队列。'),
      );
      return {
        node,
        read: () => {
          const name = valueOf(node, 'name');
          need(!!name, '请填写乡镇名称');
          return { name, any_window: checkedOf(node, 'any_window') };
        },
      };
    },
  },

  villages: {
    title: '村 / 社区',
    noun: '村(社区)',
    about: '各乡镇的村和社区。每个村(社区)的便民服务室用一台设备呼叫镇窗口(见“便民服务室设备”)。',
    items: () => state.villages.filter((v) => state.town === null || v.town_id === state.town),
    heads: ['名称', '类别', '所属乡镇', '设备', '状态'],
    cells: (/** @type {Village} */ v) => [
      v.name,
      VILLAGE_KIND[v.kind] ?? v.kind,
      townName(v.town_id),
      String(state.kiosks.filter((k) => k.village_id === v.id).length),
      v.disabled ? disabledTag() : '在用',
    ],
    label: (/** @type {Village} */ v) => v.name,
    deletable: true,
    form: (/** @type {Village | null} */ v) => {
      const node = el('div', { class: 'admin-fields' },
        v ? field('所属乡镇', el('p', { class: 'admin-fixed' }, townName(v.town_id)))
          : field('所属乡镇', select('town_id', townOptions([['', '请选择乡镇']]), state.town === null ? '' : String(state.town))),
        field('名称', textInput('name', v?.name ?? '', { placeholder: '例如 松宁村、古城社区', maxlength: 40 })),
        field('类别', select('kind', [['village', '村'], ['community', '社区']], v?.kind ?? 'village')),
      );
      return {
        node,
        read: () => {
          const name = valueOf(node, 'name');
          const body = { name, kind: valueOf(node, 'kind') };
          if (!v) {
            const town = valueOf(node, 'town_id');
            need(!!town, '请选择所属乡镇');
            Object.assign(body, { town_id: Number(town) });
          }
          need(!!name, '请填写村(社区)名称');
          return body;
        },
      };
    },
  },

  windows: {
    title: '窗口',
    noun: '窗口',
    about: '镇便民服务中心的窗口和各自承接的事项。来电按事项进承接它的窗口的队列(开启无差别受理的镇除外)。',
    items: () => state.windows.filter((w) => state.town === null || w.town_id === state.town),
    heads: ['名称', '类别', '所属乡镇', '承接事项', '人员', '状态'],
    cells: (/** @type {Window} */ w) => [
      w.name,
      WINDOW_KIND[w.kind] ?? w.kind,
      townName(w.town_id),
      w.derive_matters ? `本类全部(${derivedMatters(w.kind).length} 项)` : `${w.matter_ids.length} 项`,
      String(state.users.filter((u) => u.window_id === w.id && !u.disabled).length),
      w.disabled ? disabledTag() : '在用',
    ],
    label: (/** @type {Window} */ w) => `${townName(w.town_id)}${w.name}`,
    deletable: true,
    form: windowForm,
  },

  matters: {
    title: '事项目录',
    noun: '事项',
    about: '全县统一的事项目录:村里搜索、呼叫时选的就是这些事项。',
    items: () => state.matters,
    // Two lines in the name and paper cells, so that the six facts fit the table at 1366 px.
    heads: ['编码', '事项名称 / 村里看到的名称', '窗口类别', '材料', '状态'],
    cells: (/** @type {Matter} */ m) => [
      m.code,
      lines(m.name, m.plain_name && m.plain_name !== m.name ? m.plain_name : '(同左)'),
      WINDOW_KIND[m.window_kind] ?? m.window_kind,
      lines(`${m.required_papers.length} 项`, [m.needs_signoff ? '一审一核' : '', m.village_can_finish ? '村能办' : ''].filter(Boolean).join(' · ')),
      m.disabled ? disabledTag() : '在用',
    ],
    label: (/** @type {Matter} */ m) => m.plain_name || m.name,
    deletable: true,
    form: matterForm,
  },

  users: {
    title: '工作人员账号',
    noun: '账号',
    about: '镇窗口、窗口负责人、调度、督查和管理员的登录账号。停用后该账号马上下线、不能再登录。',
    items: () => state.users.filter((u) => state.town === null || u.town_id === state.town),
    // Two lines per cell, so that every column fits the table at 1366 px.
    heads: ['姓名 / 用户名', '角色 / 乡镇 · 窗口', '最近登录', '状态'],
    cells: (/** @type {User} */ u) => [
      lines(u.display_name, u.username),
      lines(ROLE[u.role] ?? u.role, [
        u.town_id ? townName(u.town_id) : (u.role === 'supervisor' || u.role === 'admin' ? '全县' : ''),
        windowOf(u.window_id)?.name ?? '',
      ].filter(Boolean).join(' · ')),
      ago(u.last_login_ms),
      u.disabled ? disabledTag() : (u.must_change_password ? el('span', { class: 'tag warn' }, '待改密码') : '在用'),
    ],
    label: (/** @type {User} */ u) => `${u.display_name}(${u.username})`,
    deletable: true,
    form: userForm,
  },

  kiosks: {
    title: '便民服务室设备',
    noun: '设备',
    about: '各村(社区)便民服务室的电脑。新设备用一次性开通码开通;丢失或更换的设备请吊销。',
    items: () => state.kiosks.filter((k) => state.town === null || villageOf(k.village_id)?.town_id === state.town),
    heads: ['设备名称', '村(社区) / 乡镇', '开通', '最近连接', '状态'],
    cells: (/** @type {Kiosk} */ k) => {
      const village = villageOf(k.village_id);
      return [
        k.name,
        lines(village?.name ?? '', townName(village?.town_id)),
        k.enrolled ? el('span', { class: 'tag on' }, '已开通')
          : el('span', { class: 'tag warn', title: k.enrolment ? `开通码 ${timeOf(k.enrolment.expires_at_ms)} 前有效` : '' }, k.enrolment ? '未开通 · 已发开通码' : '未开通'),
        ago(k.last_seen_ms),
        k.disabled ? disabledTag() : '在用',
      ];
    },
    label: (/** @type {Kiosk} */ k) => k.name,
    deletable: true,
    form: kioskForm,
  },
};

/**
 * A table cell of two lines: the main fact and a smaller second one (the whole text also as
 * its tooltip, for a line cut short).
 * @param {string} first
 * @param {string} second
 */
function lines(first, second) {
  return el('span', { class: 'admin-lines', title: second ? `${first}\n${second}` : first },
    el('span', {}, first), el('span', { class: 'muted' }, second));
}

/** The matters a window of `kind` takes by its kind (what `derive_matters` gives). */
function derivedMatters(/** @type {string} */ kind) {
  return kind === 'custom' ? [] : state.matters.filter((m) => m.window_kind === kind && !m.disabled);
}

/** @param {Window | null} w @returns {Form} */
function windowForm(w) {
  const kindSelect = select('kind', Object.entries(WINDOW_KIND).map(([k, text]) => [k, `${text}窗口`]), w?.kind ?? 'comprehensive');
  const townSelect = w ? null : select('town_id', townOptions([['', '请选择乡镇']]), state.town === null ? '' : String(state.town));
  const derive = checkbox('derive_matters', w?.derive_matters ?? true, '承接本类全部事项',
    '目录里这一类的事项都由本窗口办理,以后新增的同类事项也自动加入。不勾选时只承接下面勾选的事项。');
  const showAll = checkbox('show_all', false, '也列出其他类别的事项');
  const townNote = el('p', { class: 'warning small', testid: 'window-any-note', hidden: true },
    '本镇已开启无差别受理:本镇任何窗口都可以接办任何事项。下面的承接事项在关闭无差别受理后才起作用。');
  /** The ids ticked, kept while the list is redrawn for another kind or filter. */
  const ticked = new Set(w?.matter_ids ?? []);
  const list = el('div', { class: 'admin-matter-list', role: 'group', 'aria-label': '承接的事项' });

  function draw() {
    const kind = kindSelect.value;
    const deriving = /** @type {HTMLInputElement} */ (derive.querySelector('input')).checked;
    const all = /** @type {HTMLInputElement} */ (showAll.querySelector('input')).checked;
    const townId = w ? w.town_id : Number(townSelect?.value || 0);
    townNote.hidden = !state.towns.find((t) => t.id === townId)?.any_window;
    const derived = new Set(derivedMatters(kind).map((m) => m.id));
    const shown = state.matters.filter((m) => all || m.window_kind === kind || ticked.has(m.id));
    fill(list, shown.length === 0
      ? el('p', { class: 'hint' }, kind === 'custom' ? '自定义窗口没有默认事项:勾选“也列出其他类别的事项”,或先在事项目录里建“自定义”类别的事项。' : '目录里还没有这一类的事项。')
      : shown.map((m) => {
        const box = el('input', { type: 'checkbox', value: String(m.id), testid: 'window-matter', 'data-code': m.code });
        box.checked = deriving ? derived.has(m.id) : ticked.has(m.id);
        box.disabled = deriving;
        box.addEventListener('change', () => {
          if (box.checked) ticked.add(m.id);
          else ticked.delete(m.id);
        });
        return el('label', { class: `admin-check compact${m.disabled ? ' off' : ''}` }, box,
          el('span', {}, `${m.code} ${m.plain_name || m.name}`, m.window_kind !== kind ? el('span', { class: 'hint' }, `(${WINDOW_KIND[m.window_kind] ?? m.window_kind})`) : null, m.disabled ? disabledTag() : null));
      }));
  }
  for (const control of [kindSelect, townSelect, derive.querySelector('input'), showAll.querySelector('input')]) control?.addEventListener('change', draw);
  draw();

  const node = el('div', { class: 'admin-fields' },
    w ? field('所属乡镇', el('p', { class: 'admin-fixed' }, townName(w.town_id))) : field('所属乡镇', townSelect),
    field('窗口名称', textInput('name', w?.name ?? '', { placeholder: '例如 综合窗口、不动产窗口', maxlength: 40 })),
    field('类别', kindSelect),
    townNote,
    el('fieldset', { class: 'admin-matters' }, el('legend', {}, '承接的事项'), derive, showAll, list),
  );
  return {
    node,
    read: () => {
      const name = valueOf(node, 'name');
      const deriving = checkedOf(node, 'derive_matters');
      const body = {
        name,
        kind: kindSelect.value,
        derive_matters: deriving,
        matter_ids: deriving ? [] : $$('[data-testid="window-matter"]', list).filter((b) => b.checked).map((b) => Number(b.value)),
      };
      if (!w) {
        need(!!townSelect?.value, '请选择所属乡镇');
        Object.assign(body, { town_id: Number(townSelect?.value) });
      }
      need(!!name, '请填写窗口名称');
      return body;
    },
  };
}

/** @param {Matter | null} m @returns {Form} */
function matterForm(m) {
  const papers = el('ol', { class: 'admin-papers', testid: 'matter-papers' });
  function addPaper(/** @type {string} */ text) {
    const input = textInput('paper', text, { placeholder: '例如 身份证', maxlength: 60, testid: 'matter-paper', 'aria-label': '材料名称' });
    const row = el('li', {}, input, el('button', {
      type: 'button', class: 'secondary small', testid: 'matter-paper-remove',
      onclick: () => row.remove(),
    }, '去掉'));
    papers.append(row);
    return input;
  }
  for (const p of m?.required_papers ?? []) addPaper(p);
  const node = el('div', { class: 'admin-fields' },
    el('div', { class: 'admin-row2' },
      field('编码', textInput('code', m?.code ?? '', { placeholder: '例如 MZ-001', maxlength: 20 })),
      field('窗口类别', select('window_kind', Object.entries(WINDOW_KIND).map(([k, text]) => [k, text]), m?.window_kind ?? 'comprehensive')),
    ),
    field('事项名称(正式名称)', textInput('name', m?.name ?? '', { placeholder: '例如 老年人优待证办理', maxlength: 80 })),
    field('村里看到的名称(大白话)', textInput('plain_name', m?.plain_name ?? '', { placeholder: '例如 老年优待证(不填则用正式名称)', maxlength: 80 })),
    field('主管部门', textInput('department', m?.department ?? '', { placeholder: '例如 区民政局', maxlength: 60 })),
    el('fieldset', {}, el('legend', {}, '需要的材料(按顺序)'), papers,
      el('button', { type: 'button', class: 'secondary small', testid: 'matter-paper-add', onclick: () => addPaper('').focus() }, '+ 添加一项材料')),
    checkbox('needs_signoff', m?.needs_signoff ?? false, '一审一核', '窗口办理后还要窗口负责人复核签字。'),
    checkbox('village_can_finish', m?.village_can_finish ?? false, '村能办', '村便民服务室可以当场办结。'),
    field('搜索关键词', textInput('keywords', (m?.keywords ?? []).join(','), { placeholder: '群众常说的词,用逗号或空格分开,例如 建房,宅基地,修房', maxlength: 400 })),
  );
  return {
    node,
    read: () => {
      const body = {
        code: valueOf(node, 'code'),
        name: valueOf(node, 'name'),
        plain_name: valueOf(node, 'plain_name'),
        department: valueOf(node, 'department'),
        window_kind: valueOf(node, 'window_kind'),
        required_papers: $$('[data-testid="matter-paper"]', papers).map((i) => String(i.value).trim()).filter(Boolean),
        needs_signoff: checkedOf(node, 'needs_signoff'),
        village_can_finish: checkedOf(node, 'village_can_finish'),
        keywords: valueOf(node, 'keywords').split(/[\s,,、;;]+/).filter(Boolean),
      };
      need(!!body.code, '请填写事项编码');
      need(!!body.name, '请填写事项名称');
      if (!body.plain_name) body.plain_name = body.name;
      return body;
    },
  };
}

/** @param {User | null} u @returns {Form} */
function userForm(u) {
  const role = select('role', Object.entries(ROLE).map(([k, text]) => [k, text]), u?.role ?? 'approver');
  const town = select('town_id', townOptions([['', '请选择乡镇']]), u?.town_id ? String(u.town_id) : (state.town === null ? '' : String(state.town)));
  const scope = select('scope', townOptions([['', '全县']]), u?.town_id ? String(u.town_id) : '');
  const windowSelect = el('select', { name: 'window_id' });
  const townField = field('乡镇', town);
  const scopeField = field('督查范围', scope, '全县,或只查阅一个乡镇的案件和统计。');
  const windowField = field('窗口', windowSelect, '只列出所选乡镇的窗口。');

  function draw() {
    const r = role.value;
    townField.hidden = !['approver', 'chief', 'dispatcher'].includes(r);
    scopeField.hidden = r !== 'supervisor';
    windowField.hidden = !['approver', 'chief'].includes(r);
    const chosen = windowSelect.value || (u?.window_id ? String(u.window_id) : '');
    const windows = state.windows.filter((w) => w.town_id === Number(town.value) && (!w.disabled || w.id === u?.window_id));
    fill(windowSelect,
      el('option', { value: '' }, r === 'chief' ? '不限窗口(全镇)' : (town.value ? '请选择窗口' : '请先选乡镇')),
      windows.map((w) => el('option', { value: String(w.id) }, w.disabled ? `${w.name}(已停用)` : w.name)));
    windowSelect.value = windows.some((w) => String(w.id) === chosen) ? chosen : '';
  }
  role.addEventListener('change', draw);
  town.addEventListener('change', draw);
  draw();

  const node = el('div', { class: 'admin-fields' },
    u ? field('用户名', el('p', { class: 'admin-fixed' }, u.username))
      : field('用户名(登录用)', textInput('username', '', { placeholder: '字母、数字和 - ,例如 zhaohua-zonghe2', maxlength: 64, autocapitalize: 'off', spellcheck: 'false' })),
    field('姓名', textInput('display_name', u?.display_name ?? '', { placeholder: '通话时对方看到的名字', maxlength: 40 })),
    field('角色', role),
    townField,
    scopeField,
    windowField,
    u ? null : el('p', { class: 'hint' }, '保存后页面显示一个临时密码,只显示一次;本人第一次登录时必须改成自己的密码。'),
  );
  return {
    node,
    read: () => {
      const r = role.value;
      const body = {
        display_name: valueOf(node, 'display_name'),
        role: r,
        town_id: null,
        window_id: null,
      };
      if (!u) {
        const username = valueOf(node, 'username');
        need(!!username, '请填写用户名');
        need(!/\s/.test(username), '用户名里不能有空格');
        Object.assign(body, { username });
      }
      need(!!body.display_name, '请填写姓名');
      if (['approver', 'chief', 'dispatcher'].includes(r)) {
        need(!!town.value, '请选择乡镇');
        body.town_id = Number(town.value);
      }
      if (r === 'supervisor' && scope.value) body.town_id = Number(scope.value);
      if (['approver', 'chief'].includes(r) && windowSelect.value) body.window_id = Number(windowSelect.value);
      need(r !== 'approver' || body.window_id !== null, '窗口办理人员要选一个窗口');
      return body;
    },
  };
}

/** @param {Kiosk | null} k @returns {Form} */
function kioskForm(k) {
  const villages = state.villages.filter((v) => (state.town === null || v.town_id === state.town) && !v.disabled);
  const villageSelect = k ? null : el('select', { name: 'village_id' },
    el('option', { value: '' }, '请选择村(社区)'),
    state.towns.filter((t) => villages.some((v) => v.town_id === t.id)).map((t) => el('optgroup', { label: t.name },
      villages.filter((v) => v.town_id === t.id).map((v) => el('option', { value: String(v.id) }, v.name)))));
  const name = textInput('name', k?.name ?? '', { placeholder: '不填则为“村名便民服务室”', maxlength: 60 });
  const node = el('div', { class: 'admin-fields' },
    k ? el('dl', { class: 'admin-facts' },
      el('dt', {}, '村(社区)'), el('dd', {}, `${townName(villageOf(k.village_id)?.town_id)} ${villageOf(k.village_id)?.name ?? ''}`),
      el('dt', {}, '开通'), el('dd', { testid: 'kiosk-enrolled', 'data-enrolled': String(k.enrolled) }, k.enrolled ? '已开通' : '未开通'),
      el('dt', {}, '最近连接'), el('dd', {}, ago(k.last_seen_ms)),
      k.token_expires_at_ms ? [el('dt', {}, '凭证有效至'), el('dd', {}, timeOf(k.token_expires_at_ms))] : null,
    ) : field('村(社区)', villageSelect),
    field('设备名称', name),
    k ? null : el('p', { class: 'hint' }, '保存后点“生成开通码”,在这台电脑上打开便民服务室页面输入开通码(或扫码)即可开通。'),
  );
  return {
    node,
    read: () => {
      let body = { name: valueOf(node, 'name') };
      if (!k) {
        need(!!villageSelect?.value, '请选择村(社区)');
        const village = villageOf(Number(villageSelect?.value));
        body = { village_id: Number(villageSelect?.value), name: body.name || `${village?.name ?? ''}便民服务室` };
      }
      need(!!body.name, '请填写设备名称');
      return body;
    },
  };
}

// ---- loading ------------------------------------------------------------------------------

/** Everything, fresh from the server. */
async function load() {
  const [region, users, kiosks] = await Promise.all([
    api('/api/admin/region', { token }),
    api('/api/admin/users', { token }),
    api('/api/admin/kiosks', { token }),
  ]);
  state.county = region.county ?? state.county;
  state.towns = region.towns ?? [];
  state.villages = region.villages ?? [];
  state.windows = region.windows ?? [];
  state.matters = region.matters ?? [];
  state.users = users ?? [];
  state.kiosks = kiosks ?? [];
}

// ---- drawing ------------------------------------------------------------------------------

const sectionOf = (/** @type {Kind} */ kind) => $(`[data-testid="admin-section"][data-kind="${kind}"]`);

function drawNav() {
  for (const button of $$('[data-testid="admin-nav"]')) {
    const on = button.dataset.kind === state.kind;
    button.setAttribute('aria-selected', String(on));
    button.classList.toggle('on', on);
  }
  const filter = $('#town-filter');
  const value = state.town === null ? '' : String(state.town);
  fill(filter, el('option', { value: '' }, '全部乡镇'), state.towns.map((t) => el('option', { value: String(t.id) }, t.disabled ? `${t.name}(已停用)` : t.name)));
  filter.value = state.towns.some((t) => String(t.id) === value) ? value : '';
  // The filter narrows villages, windows, accounts and devices; towns and matters are county-wide.
  filter.disabled = state.kind === 'towns' || state.kind === 'matters';
}

/** Draw the section of the current kind (the others are hidden). */
function draw() {
  drawNav();
  for (const kind of KINDS) sectionOf(kind).hidden = kind !== state.kind;
  const spec = SPEC[state.kind];
  const items = spec.items();
  const section = sectionOf(state.kind);
  const selected = state.selected === 'new' ? null : items.find((i) => i.id === state.selected) ?? null;
  if (state.selected !== 'new' && !selected) state.selected = null;
  const filtered = state.town !== null && !['towns', 'matters'].includes(state.kind) ? `(${townName(state.town)})` : '';

  const rows = items.map((item) => el('tr', {
    class: `admin-row${item.disabled ? ' disabled' : ''}${item.id === state.selected ? ' selected' : ''}`,
    testid: 'admin-row',
    'data-id': String(item.id),
    'data-disabled': String(item.disabled),
    'aria-selected': String(item.id === state.selected),
    onclick: () => pick(item.id),
  }, spec.cells(item).map((cell, i) => (i === 0
    ? el('td', {}, el('button', { type: 'button', class: 'link-button', testid: 'admin-open' }, cell))
    : el('td', {}, cell)))));

  fill(section,
    el('div', { class: 'admin-head' },
      el('h1', {}, `${spec.title}${filtered}`),
      el('span', { class: 'admin-count' }, `共 ${items.length} 项${items.some((i) => i.disabled) ? `,其中 ${items.filter((i) => i.disabled).length} 项已停用` : ''}`),
      el('button', { type: 'button', class: 'secondary', testid: 'admin-refresh', onclick: refresh }, '刷新'),
      el('button', { type: 'button', class: 'primary', testid: 'admin-new', onclick: () => pick('new') }, `+ 新建${spec.noun}`),
    ),
    el('p', { class: 'hint admin-about' }, spec.about),
    el('div', { class: 'admin-body' },
      el('div', { class: 'admin-table results-scroll' },
        el('table', { class: 'results' },
          el('thead', {}, el('tr', {}, spec.heads.map((h) => el('th', { scope: 'col' }, h)))),
          el('tbody', {}, rows.length ? rows : el('tr', {}, el('td', { colspan: String(spec.heads.length), class: 'hint' }, `还没有${spec.noun}。点右上角“新建”添加。`))),
        ),
      ),
      panel(spec, selected),
    ),
  );
}

/** The form beside the table: of the item picked, of a new one, or a hint. */
function panel(/** @type {KindSpec} */ spec, /** @type {any} */ item) {
  if (state.selected === null) {
    return el('aside', { class: 'admin-panel empty', testid: 'admin-panel' },
      el('p', { class: 'hint' }, `点表格里的一行修改它,或点“新建${spec.noun}”。`));
  }
  const form = spec.form(item);
  const kind = state.kind;
  const actions = el('div', { class: 'admin-actions' },
    el('button', { type: 'submit', class: 'primary', testid: 'admin-save' }, item ? '保存' : `保存新${spec.noun}`),
    item ? el('button', {
      type: 'button', class: item.disabled ? 'success' : 'secondary', testid: 'admin-disable',
      'data-disabled': String(item.disabled), onclick: () => setDisabled(kind, item, !item.disabled),
    }, item.disabled ? '启用' : '停用') : null,
    item && spec.deletable ? el('button', { type: 'button', class: 'secondary danger-text', testid: 'admin-delete', onclick: () => askToDelete(kind, item) }, '删除') : null,
    el('button', { type: 'button', class: 'secondary', testid: 'admin-cancel', onclick: () => pick(null) }, '关闭'),
  );
  const confirmSlot = el('div', { class: 'admin-confirm-slot', testid: 'admin-confirm-slot' });
  const extra = [];
  const refusal = item && state.inUse
    ? el('div', { class: 'admin-refusal', role: 'alert', testid: 'admin-in-use' },
      el('p', {}, state.inUse),
      item.disabled ? null : el('button', { type: 'button', class: 'primary', testid: 'admin-disable-instead', onclick: () => setDisabled(kind, item, true) }, '改为停用'))
    : null;
  if (kind === 'users' && item) extra.push(passwordBox(item));
  if (kind === 'kiosks' && item) extra.push(enrolmentBox(item));

  const formNode = el('form', { class: 'admin-form', novalidate: true, testid: 'admin-form' },
    el('h2', {}, item ? `修改${spec.noun}:${spec.label(item)}` : `新建${spec.noun}`),
    item?.disabled ? el('p', { class: 'warning small' }, `这个${spec.noun}已停用。`) : null,
    el('div', { class: 'admin-form-body' }, form.node, extra),
    el('div', { class: 'admin-form-foot' }, refusal, actions, confirmSlot),
  );
  formNode.addEventListener('submit', (/** @type {Event} */ event) => {
    event.preventDefault();
    save(kind, item, form);
  });
  return el('aside', { class: 'admin-panel', testid: 'admin-panel' }, formNode);
}

/** Users: 重置密码, and the temporary password shown once. */
function passwordBox(/** @type {User} */ u) {
  const shown = state.password && state.password.userId === u.id ? state.password : null;
  const box = el('div', { class: 'admin-box' },
    el('h3', {}, '密码'),
    shown ? temporaryPassword(shown.password, shown.reset) : null,
    el('button', { type: 'button', class: 'secondary', testid: 'admin-reset-password', onclick: (/** @type {Event} */ e) => {
      confirmStrip(/** @type {HTMLElement} */ (e.currentTarget), `重置“${u.display_name}”的密码?他(她)会马上下线,要用新的临时密码登录。`, '重置密码', () => resetPassword(u));
    } }, '重置密码'),
  );
  return box;
}

/** The temporary password, once, with 复制 and what it means. */
function temporaryPassword(/** @type {string} */ password, /** @type {boolean} */ reset) {
  const copy = el('button', { type: 'button', class: 'secondary small', testid: 'temp-password-copy' }, '复制');
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(password);
      say('临时密码已复制', 'ok');
    } catch {
      const range = document.createRange();
      range.selectNodeContents(/** @type {Node} */ ($('[data-testid="temp-password"]')));
      getSelection()?.removeAllRanges();
      getSelection()?.addRange(range);
      say('没能自动复制:密码已选中,请按 Ctrl+C 复制', 'info');
    }
  });
  return el('div', { class: 'admin-secret', testid: 'temp-password-box' },
    el('p', {}, reset ? '新的临时密码:' : '临时密码:'),
    el('p', { class: 'secret-line' }, el('code', { class: 'secret', testid: 'temp-password' }, password), copy),
    el('p', { class: 'hint' }, '只显示这一次,请马上交给本人。第一次登录时必须改成自己的密码。'));
}

/** Kiosks: 生成开通码 (the code big, its QR, its expiry) and 吊销. */
function enrolmentBox(/** @type {Kiosk} */ k) {
  const issued = state.enrolment && state.enrolment.kioskId === k.id ? state.enrolment : null;
  const qr = issued ? qrElement(issued.qr_svg) : null;
  return el('div', { class: 'admin-box' },
    el('h3', {}, '开通'),
    issued ? el('div', { class: 'enrol-shown', testid: 'enrol-box' },
      el('p', { class: 'enrol-label' }, '开通码'),
      el('p', { class: 'enrol-code', testid: 'enrol-code', 'data-code': issued.code }, fourFour(issued.code)),
      qr,
      el('p', { class: 'hint', testid: 'enrol-expiry' }, `${timeOf(issued.expires_at_ms)} 前有效(还有 ${Math.max(0, Math.round((issued.expires_at_ms - Date.now()) / 60_000))} 分钟),只能用一次。在这台设备上打开便民服务室页面,输入开通码或扫${qr ? '左边' : ''}的二维码。`)) : (k.enrolment ? el('p', { class: 'hint' }, `已有一个开通码,${timeOf(k.enrolment.expires_at_ms)} 前有效(重新生成会作废它)。`) : null),
    el('div', { class: 'admin-actions' },
      el('button', { type: 'button', class: 'primary', testid: 'admin-enrol', disabled: k.disabled, onclick: () => issueCode(k) }, k.enrolled ? '重新开通(生成开通码)' : '生成开通码'),
      k.enrolled ? el('button', { type: 'button', class: 'secondary danger-text', testid: 'admin-revoke', onclick: (/** @type {Event} */ e) => {
        confirmStrip(/** @type {HTMLElement} */ (e.currentTarget), `吊销“${k.name}”?这台设备马上断开,要重新开通才能再用。`, '吊销', () => revoke(k));
      } }, '吊销') : null),
    k.disabled ? el('p', { class: 'hint' }, '已停用的设备不能开通,请先启用。') : null,
  );
}

/**
 * The server's QR code SVG (text) as an element of this page, or null if it is not a plain
 * <svg> (then the code alone is shown).
 * @param {string} text
 * @returns {Element | null}
 */
function qrElement(text) {
  if (!text) return null;
  const parsed = new DOMParser().parseFromString(text, 'image/svg+xml');
  const root = parsed.documentElement;
  if (root.nodeName !== 'svg' || parsed.querySelector('parsererror, script, foreignObject')) return null;
  const svg = document.importNode(root, true);
  svg.removeAttribute('width');
  svg.removeAttribute('height');
  svg.setAttribute('class', 'enrol-qr');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', '开通码的二维码');
  svg.setAttribute('data-testid', 'enrol-qr');
  return svg;
}

/**
 * A confirmation inside the form's foot (not a dialog over the table): `text`, a button
 * `yes` that runs `action`, and 取消.
 * @param {HTMLElement} from the button that asked (focus goes back to it on 取消)
 * @param {string} text @param {string} yes @param {() => void} action
 */
function confirmStrip(from, text, yes, action) {
  const slot = $('[data-testid="admin-confirm-slot"]', sectionOf(state.kind));
  const no = el('button', { type: 'button', class: 'secondary', testid: 'admin-confirm-no', onclick: () => { slot.replaceChildren(); from.focus(); } }, '取消');
  const ok = el('button', { type: 'button', class: 'danger', testid: 'admin-confirm-yes', onclick: () => { slot.replaceChildren(); action(); } }, yes);
  fill(slot, el('div', { class: 'admin-confirm', role: 'alertdialog', 'aria-label': text }, el('p', {}, text), el('div', { class: 'admin-actions' }, ok, no)));
  ok.focus();
}

// ---- actions ------------------------------------------------------------------------------

function pick(/** @type {number | 'new' | null} */ id) {
  if (state.selected !== id) {
    state.password = null;
    state.enrolment = null;
    state.inUse = null;
  }
  state.selected = id;
  draw();
  if (id !== null) $('.admin-panel input:not([type="checkbox"]), .admin-panel select', sectionOf(state.kind))?.focus();
}

/**
 * Run a change: `work` talks to the server; then everything is loaded again and drawn, and the
 * status line says `done` (or what went wrong).
 * @param {() => Promise<any>} work @param {(result: any) => string} done
 * @returns {Promise<any>} the result of `work`, or undefined if it failed
 */
async function change(work, done) {
  if (state.busy) return undefined;
  state.busy = true;
  document.body.dataset.busy = 'true';
  say('正在保存…', 'info');
  let result;
  try {
    result = await work();
  } catch (caught) {
    const err = /** @type {any} */ (caught);
    state.busy = false;
    delete document.body.dataset.busy;
    if (err.status === 401) {
      forgetToken(STAFF_TOKEN_KEY);
      goToLogin();
      return undefined;
    }
    say(`没有成功:${err.message}`, 'error');
    if (err.status === 409 && err.code === 'in_use') {
      state.inUse = `${err.message}`;
      draw();
      say(`不能删除:${err.message}`, 'error');
    }
    return undefined;
  }
  try {
    await load();
  } catch (caught) {
    say(`已保存,但刷新列表失败:${/** @type {any} */ (caught).message}`, 'error');
    state.busy = false;
    delete document.body.dataset.busy;
    draw();
    return result;
  }
  state.busy = false;
  delete document.body.dataset.busy;
  const text = done(result);
  draw();
  say(text, 'ok');
  // A password or a code shown once must not hide below the form's fold.
  $('[data-testid="temp-password-box"], [data-testid="enrol-box"]', sectionOf(state.kind))?.scrollIntoView({ block: 'nearest' });
  return result;
}

/** Load the lists again (a device enrolled meanwhile, its last connection, another admin's change). */
async function refresh() {
  if (state.busy) return;
  say('正在刷新…', 'info');
  try {
    await load();
  } catch (caught) {
    const err = /** @type {any} */ (caught);
    if (err.status === 401) {
      forgetToken(STAFF_TOKEN_KEY);
      goToLogin();
      return;
    }
    say(`刷新失败:${err.message}`, 'error');
    return;
  }
  draw();
  say('已刷新', 'ok');
}

/** @param {Kind} kind @param {any} item null for a new one @param {Form} form */
async function save(kind, item, form) {
  let body;
  try {
    body = form.read();
  } catch (caught) {
    say(/** @type {Error} */ (caught).message, 'error');
    return;
  }
  const spec = SPEC[kind];
  await change(
    () => (item
      ? api(`/api/admin/${kind}/${item.id}`, { method: 'PUT', body, token })
      : api(`/api/admin/${kind}`, { method: 'POST', body, token })),
    (result) => {
      state.inUse = null;
      if (item) return `已保存:${spec.label(item)}`;
      const row = kind === 'users' ? result?.user : result;
      if (row?.id !== undefined) {
        state.selected = row.id;
        if (kind === 'users' && result?.temporary_password) {
          state.password = { userId: row.id, password: result.temporary_password, reset: false };
        }
      }
      const made = SPEC[kind].items().find((i) => i.id === row?.id);
      return `已新建${spec.noun}:${made ? spec.label(made) : ''}${kind === 'users' ? '。请把临时密码交给本人' : ''}`;
    },
  );
}

/** @param {Kind} kind @param {Item} item @param {boolean} off */
async function setDisabled(kind, item, off) {
  const spec = SPEC[kind];
  await change(
    () => api(`/api/admin/${kind}/${item.id}/${off ? 'disable' : 'enable'}`, { method: 'POST', token }),
    () => {
      state.inUse = null;
      return `${off ? '已停用' : '已启用'}:${spec.label(item)}`;
    },
  );
}

/** @param {Kind} kind @param {Item} item */
function askToDelete(kind, item) {
  const spec = SPEC[kind];
  const from = $('[data-testid="admin-delete"]', sectionOf(kind));
  confirmStrip(from, `确定删除${spec.noun}“${spec.label(item)}”?删除后不能恢复。还有别的记录用到它时不能删除,可以改为停用。`, '确定删除', async () => {
    await change(
      () => api(`/api/admin/${kind}/${item.id}`, { method: 'DELETE', token }),
      () => {
        state.selected = null;
        return `已删除:${spec.label(item)}`;
      },
    );
  });
}

async function resetPassword(/** @type {User} */ u) {
  await change(
    () => api(`/api/admin/users/${u.id}/password-reset`, { method: 'POST', token }),
    (result) => {
      state.password = { userId: u.id, password: result?.temporary_password ?? '', reset: true };
      return `已重置 ${u.display_name} 的密码,他(她)已下线`;
    },
  );
}

async function issueCode(/** @type {Kiosk} */ k) {
  await change(
    () => api(`/api/admin/kiosks/${k.id}/enrolment`, { method: 'POST', token }),
    (result) => {
      state.enrolment = { kioskId: k.id, code: String(result?.code ?? ''), expires_at_ms: result?.expires_at_ms ?? 0, qr_svg: result?.qr_svg ?? '' };
      return `已生成“${k.name}”的开通码,${timeOf(state.enrolment.expires_at_ms)} 前有效`;
    },
  );
}

async function revoke(/** @type {Kiosk} */ k) {
  await change(
    () => api(`/api/admin/kiosks/${k.id}/revoke`, { method: 'POST', token }),
    () => {
      state.enrolment = null;
      return `已吊销“${k.name}”:这台设备已断开,要重新开通才能再用`;
    },
  );
}

// ---- start --------------------------------------------------------------------------------

const setup = showSetup;

/** The kind in the address (`/admin#users`), so that a reload stays where it was. */
function kindFromAddress() {
  const kind = /** @type {Kind} */ (location.hash.replace(/^#/, ''));
  return KINDS.includes(kind) ? kind : null;
}

async function start() {
  state.me = await signedInStaff(token, ['admin'], '县级管理是给管理员用的。请用管理员账号登录。');
  if (!state.me) return;
  fill($('#who'), state.me.name ?? '');
  try {
    await load();
  } catch (caught) {
    const err = /** @type {any} */ (caught);
    if (err.code === 'password_change_required') {
      setup('请先修改密码', '您的密码是临时密码。请重新登录,按提示改成自己的密码后再来管理。');
    } else {
      setup('打不开', err.message);
    }
    return;
  }
  fill($('#place'), state.county.name ? `县级管理 · ${state.county.name}` : '县级管理');
  state.kind = kindAtStart ?? 'towns';
  history.replaceState(null, '', `#${state.kind}`);
  showView('admin');
  draw();
  say('');
}

for (const button of $$('[data-testid="admin-nav"]')) {
  button.addEventListener('click', () => {
    const kind = /** @type {Kind} */ (button.dataset.kind);
    if (kind !== state.kind) {
      state.kind = kind;
      pick(null);
      history.replaceState(null, '', `#${kind}`);
    }
  });
}
$('#town-filter')?.addEventListener('change', (/** @type {Event} */ e) => {
  const value = /** @type {HTMLSelectElement} */ (e.target).value;
  state.town = value ? Number(value) : null;
  draw();
});
$('#setup-login')?.addEventListener('click', () => {
  forgetToken(STAFF_TOKEN_KEY);
  goToLogin();
});
$('#logout-button')?.addEventListener('click', async () => {
  try {
    await api('/api/logout', { method: 'POST', token });
  } catch {
    // Logged out here anyway.
  }
  forgetToken(STAFF_TOKEN_KEY);
  location.replace('/login');
});

start();
