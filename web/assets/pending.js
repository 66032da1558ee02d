// @ts-check
// The kiosk's papers not yet acknowledged as stored, kept in the browser's IndexedDB so that a
// page reload, a browser restart or a power cut does not lose a clerk's scans: each record
// holds the file itself, its name and checklist item, the case it belongs to (once the case is
// open) and the address of its resumable upload (once started), so that the upload goes on
// where the server stands. A record goes when the server has stored the paper, when the clerk
// removes it or starts over, or when the server refuses it for good; records older than
// MAX_AGE_MS are dropped. Without IndexedDB (a private window) everything still works, only
// without the safety net.

const DB_NAME = 'cunneng-kiosk';
const STORE = 'pending-papers';
const MAX_AGE_MS = 7 * 24 * 3600 * 1000;

/**
 * @typedef {{ id: string, caseNo: string|null, matterId: number|null, name: string,
 *   checklistItem: string|null, contentType: string, blob: Blob, uploadUrl: string|null,
 *   createdAt: number }} PendingPaper
 */

/** @returns {Promise<IDBDatabase|null>} */
function openDb() {
  return new Promise((resolve) => {
    let request;
    try {
      request = indexedDB.open(DB_NAME, 1);
    } catch {
      resolve(null);
      return;
    }
    request.onupgradeneeded = () => {
      request.result.createObjectStore(STORE, { keyPath: 'id' });
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => resolve(null);
    request.onblocked = () => resolve(null);
  });
}

/**
 * One transaction on the store; resolves with the request's result (or undefined).
 * @param {IDBDatabase} db
 * @param {IDBTransactionMode} mode
 * @param {(store: IDBObjectStore) => IDBRequest|void} work
 */
function run(db, mode, work) {
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const request = work(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(request ? request.result : undefined);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

export class PendingPapers {
  constructor() {
    /** @type {Promise<IDBDatabase|null>|null} */
    this.db = null;
  }

  /** @returns {Promise<IDBDatabase|null>} */
  open() {
    this.db ??= typeof indexedDB === 'undefined' ? Promise.resolve(null) : openDb();
    return this.db;
  }

  /** A new id for a record. */
  static newId() {
    return `${Date.now().toString(36)}-${crypto.getRandomValues(new Uint32Array(2)).join('')}`;
  }

  /** @param {PendingPaper} record */
  async put(record) {
    const db = await this.open();
    if (!db) return;
    try {
      await run(db, 'readwrite', (s) => s.put(record));
    } catch (err) {
      // A full disk or a quota: the paper still uploads, only without the safety net.
      console.warn('cunneng: could not keep a paper for later', err);
    }
  }

  /** @param {string} id @param {Partial<PendingPaper>} fields */
  async update(id, fields) {
    const db = await this.open();
    if (!db) return;
    try {
      const record = /** @type {PendingPaper|undefined} */ (await run(db, 'readonly', (s) => s.get(id)));
      if (record) await run(db, 'readwrite', (s) => s.put({ ...record, ...fields }));
    } catch (err) {
      console.warn('cunneng: could not update a kept paper', err);
    }
  }

  /** @param {string} id */
  async remove(id) {
    const db = await this.open();
    if (!db) return;
    try {
      await run(db, 'readwrite', (s) => s.delete(id));
    } catch (err) {
      console.warn('cunneng: could not drop a kept paper', err);
    }
  }

  /**
   * The kept papers of a case, oldest first: those of `caseNo`, and those kept before any case
   * was open for the same matter (the case opened, the page went before it noted the number).
   * Records past their age are dropped.
   * @param {string} caseNo
   * @param {number|null} matterId
   * @returns {Promise<PendingPaper[]>}
   */
  async ofCase(caseNo, matterId) {
    const db = await this.open();
    if (!db) return [];
    let all;
    try {
      all = /** @type {PendingPaper[]} */ (await run(db, 'readonly', (s) => s.getAll()));
    } catch {
      return [];
    }
    const now = Date.now();
    const old = all.filter((r) => now - r.createdAt > MAX_AGE_MS);
    for (const r of old) await this.remove(r.id);
    return all
      .filter((r) => now - r.createdAt <= MAX_AGE_MS)
      .filter((r) => r.caseNo === caseNo || (r.caseNo === null && matterId !== null && r.matterId === matterId))
      .sort((a, b) => a.createdAt - b.createdAt);
  }
}
