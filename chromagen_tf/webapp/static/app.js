// ChromaGen web app: uploads photos to /api/colorize, shows gray | colour
// with a before/after slider, and downloads one PNG or all of them as a zip.
// With a hint model, each photo takes colour hints (hints.js); the result
// then updates after each change as a preview, and downloads are computed
// at full resolution with the hints, their sidecar beside them.
'use strict';

const PREVIEW_MAX_SIDE = 1400;  // Display only; downloads are full size.
const MAX_BUSY_RETRIES = 60;
const UPDATE_DELAY_MS = 150;  // Hint changes within this are sent as one.

const state = {
  limits: null,
  cards: [],
  queue: [],
  active: 0,
  activeCard: null,  // The card Ctrl+Z and Delete act on.
};

const $ = (selector, root = document) => root.querySelector(selector);

function megabytes(bytes) {
  if (bytes < 1e5) return `${Math.ceil(bytes / 1e3)} kB`;
  return `${(bytes / 1e6).toFixed(bytes < 1e7 ? 1 : 0)} MB`;
}

function setStatus(text) {
  $('#status').textContent = text;
}

// The gray a photo's lightness L* shows as: sRGB-encode its luminance Y.
// This is the model's input, the same as colorize --compare's gray panel.
const TO_LINEAR = new Float32Array(256);
for (let i = 0; i < 256; i++) {
  const c = i / 255;
  TO_LINEAR[i] = c <= 0.04045 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
}
const Y_STEPS = 4096;
const FROM_Y = new Uint8ClampedArray(Y_STEPS + 1);
for (let i = 0; i <= Y_STEPS; i++) {
  const y = i / Y_STEPS;
  const v = y <= 0.0031308 ? 12.92 * y : 1.055 * Math.pow(y, 1 / 2.4) - 0.055;
  FROM_Y[i] = Math.round(v * 255);
}

function drawGray(canvas, source, width, height) {
  const scale = Math.min(1, PREVIEW_MAX_SIDE / Math.max(width, height));
  canvas.width = Math.max(1, Math.round(width * scale));
  canvas.height = Math.max(1, Math.round(height * scale));
  const context = canvas.getContext('2d', {willReadFrequently: true});
  context.drawImage(source, 0, 0, canvas.width, canvas.height);
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height);
  const data = pixels.data;
  for (let i = 0; i < data.length; i += 4) {
    const y = 0.212671 * TO_LINEAR[data[i]] + 0.715160 * TO_LINEAR[data[i + 1]] +
        0.072169 * TO_LINEAR[data[i + 2]];
    const gray = FROM_Y[Math.round(Math.min(1, y) * Y_STEPS)];
    data[i] = data[i + 1] = data[i + 2] = gray;
  }
  context.putImageData(pixels, 0, 0);
}

function downloadName(fileName) {
  const base = fileName.replace(/\.[^.]*$/, '').replace(/[^\w.-]+/g, '_')
      .replace(/^[._]+/, '').slice(0, 80) || 'photo';
  return `${base}-colorized.png`;
}

// What `colorize --hints=sidecar` reads beside the photo.
function sidecarName(fileName) {
  return `${fileName.replace(/[\\/]/g, '_')}.hints.json`;
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (body.error) return body.error;
  } catch (error) { /* Not JSON: fall through. */ }
  return `The server answered ${response.status} ${response.statusText}.`;
}

// POSTs the card's photo and fields; retries while the server is busy.
async function send(card, path, fields) {
  const form = new FormData();
  form.append('image', card.file);
  const renderSize = $('#render-size').value.trim();
  if (renderSize) form.append('render_size', renderSize);
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  for (let attempt = 0; ; attempt++) {
    const response = await fetch(path, {method: 'POST', body: form});
    if (response.status !== 503 || attempt >= MAX_BUSY_RETRIES) return response;
    const wait = Number(response.headers.get('Retry-After')) || 2;
    await new Promise((resolve) => setTimeout(resolve, wait * 1000));
  }
}

class Card {
  constructor(file) {
    this.file = file;
    this.result = null;  // The colorized PNG, a Blob.
    this.root = $('#card-template').content.firstElementChild.cloneNode(true);
    this.compare = $('.compare', this.root);
    this.before = $('.before', this.root);
    this.after = $('.after', this.root);
    this.bar = $('.bar', this.root);
    this.stateText = $('.state', this.root);
    this.grayFromInput = false;
    this.photoSize = null;  // {width, height} as displayed, EXIF applied.
    this.full = null;  // {key, blob, url}: the full-resolution result of a hint list.
    this.previewUrl = null;
    this.generation = 0;  // Counts hint changes; older answers are dropped.
    this.updating = false;
    this.again = false;
    this.timer = null;
    this.link = $('.download', this.root);
    this.sidecarLink = $('.sidecar', this.root);
    this.editor = new HintEditor(this.root, {
      size: () => this.photoSize,
      suggest: (x, y, hints) => this.suggest(x, y, hints),
      onChange: () => this.hintsChanged(),
      onActive: () => { state.activeCard = this; },
    });
    this.link.addEventListener('click', (event) => this.download(event));
    $('.name', this.root).textContent = file.name;
    $('.name', this.root).title = file.name;
    $('.size', this.root).textContent = megabytes(file.size);
    const slider = $('.slider', this.root);
    slider.addEventListener('input', (event) => {
      this.compare.style.setProperty('--position', `${event.target.value}%`);
    });
    // With hints a click on the photo adds one, so only the handle slides.
    const handle = $('.handle', this.root);
    handle.addEventListener('pointerdown', (event) => {
      event.preventDefault();
      handle.setPointerCapture(event.pointerId);
      const move = (moveEvent) => {
        const box = this.compare.getBoundingClientRect();
        slider.value = 100 * (moveEvent.clientX - box.left) / box.width;
        slider.dispatchEvent(new Event('input'));
      };
      const up = () => {
        handle.removeEventListener('pointermove', move);
        handle.removeEventListener('pointerup', up);
      };
      handle.addEventListener('pointermove', move);
      handle.addEventListener('pointerup', up);
    });
    $('#results').append(this.root);
    this.preview();
  }

  async preview() {
    try {
      const bitmap = await createImageBitmap(this.file,
                                             {imageOrientation: 'from-image'});
      this.setAspect(bitmap.width, bitmap.height);
      this.photoSize = {width: bitmap.width, height: bitmap.height};
      drawGray(this.before, bitmap, bitmap.width, bitmap.height);
      bitmap.close();
      this.grayFromInput = true;
      this.compare.hidden = false;
    } catch (error) {
      // A format this browser cannot show: the gray comes from the result.
    }
  }

  setAspect(width, height) {
    this.compare.style.aspectRatio = `${width} / ${height}`;
  }

  progress(text, fraction) {
    this.stateText.textContent = text;
    if (fraction !== undefined) this.bar.style.width = `${100 * fraction}%`;
  }

  fail(message) {
    this.root.classList.remove('working');
    this.root.classList.add('failed');
    // Without a preview there is nothing to compare: only the message.
    if (!this.grayFromInput) this.compare.hidden = true;
    const error = $('.error', this.root);
    error.textContent = message;
    error.hidden = false;
  }

  showUrl(url) {
    return new Promise((resolve, reject) => {
      this.after.onload = resolve;
      this.after.onerror = reject;
      this.after.src = url;
    });
  }

  async showPreview(blob) {
    const url = URL.createObjectURL(blob);
    await this.showUrl(url);
    if (this.previewUrl) URL.revokeObjectURL(this.previewUrl);
    this.previewUrl = url;
  }

  // The full-resolution result of a hint list: what the link downloads.
  setFull(key, blob) {
    if (this.full) URL.revokeObjectURL(this.full.url);
    this.full = {key, blob, url: URL.createObjectURL(blob)};
    this.link.href = this.full.url;
    if (key === this.hintKey()) this.result = blob;
  }

  async succeed(blob, seconds) {
    this.setFull(hintsJson([]), blob);
    await this.showUrl(this.full.url);
    this.root.dataset.hintsShown = '0';
    const {naturalWidth: width, naturalHeight: height} = this.after;
    this.setAspect(width, height);
    this.photoSize = {width, height};
    if (!this.grayFromInput) drawGray(this.before, this.after, width, height);
    $('.size', this.root).textContent =
        `${width} \u00d7 ${height} \u00b7 ${seconds.toFixed(1)} s`;
    this.link.download = downloadName(this.file.name);
    this.link.hidden = false;
    this.root.classList.remove('working');
    this.root.classList.add('done');
    if (state.limits && state.limits.takes_hints) this.editor.enable();
  }

  hintKey() {
    return hintsJson(this.editor.hints);
  }

  // The sidecar link and the full result's link follow the hint list.
  hintsChanged() {
    const hints = this.editor.hints;
    delete this.root.dataset.hintsShown;  // Until the result shows them.
    if (this.sidecarLink.href) URL.revokeObjectURL(this.sidecarLink.href);
    this.sidecarLink.hidden = !hints.length;
    if (hints.length) {
      this.sidecarLink.href = URL.createObjectURL(
          new Blob([hintsJson(hints)], {type: 'application/json'}));
      this.sidecarLink.download = sidecarName(this.file.name);
    } else {
      this.sidecarLink.removeAttribute('href');
    }
    this.generation++;
    clearTimeout(this.timer);
    if (this.full && this.full.key === this.hintKey()) {  // Undone to a known result.
      this.again = false;
      this.result = this.full.blob;
      this.showUrl(this.full.url).then(() => {
        this.root.dataset.hintsShown = String(this.editor.hints.length);
      });
      return;
    }
    this.result = null;
    this.timer = setTimeout(() => this.update(), UPDATE_DELAY_MS);
  }

  // One preview request at a time; a change during it sends another after.
  async update() {
    if (this.updating) {
      this.again = true;
      return;
    }
    this.updating = true;
    this.root.classList.add('updating');
    const generation = this.generation;
    const started = performance.now();
    const key = this.hintKey();
    try {
      const response = await send(this, '/api/colorize', {hints: key, preview: '1'});
      if (generation !== this.generation) return;  // Stale: dropped.
      if (!response.ok) {
        this.note(await errorText(response));
        return;
      }
      await this.showPreview(await response.blob());
      this.root.dataset.hintsShown = String(JSON.parse(key).hints.length);
      this.note('');
      $('.size', this.root).textContent =
          `${this.photoSize.width} \u00d7 ${this.photoSize.height} \u00b7 ` +
          `preview in ${((performance.now() - started) / 1000).toFixed(2)} s`;
    } catch (error) {
      this.note('Could not reach the server.');
    } finally {
      this.updating = false;
      if (this.again) {
        this.again = false;
        this.update();
      } else {
        this.root.classList.remove('updating');
      }
    }
  }

  async suggest(x, y, hints) {
    if (!state.limits || !state.limits.suggests_colors) return null;
    try {
      const response = await send(this, '/api/suggest',
                                  {x: String(x), y: String(y), hints: hintsJson(hints)});
      if (!response.ok) {
        this.note(await errorText(response));
        return null;
      }
      return (await response.json()).suggestions;
    } catch (error) {
      return null;
    }
  }

  note(message) {
    const error = $('.error', this.root);
    error.textContent = message;
    error.hidden = !message;
  }

  // The full-resolution result of the current hints, computed if needed.
  async fullResult() {
    const key = this.hintKey();
    if (this.full && this.full.key === key) return this.full.blob;
    this.root.classList.add('updating');
    try {
      const response = await send(this, '/api/colorize', {hints: key});
      if (!response.ok) throw new Error(await errorText(response));
      this.setFull(key, await response.blob());
    } finally {
      if (!this.updating) this.root.classList.remove('updating');
    }
    return this.full.blob;
  }

  async download(event) {
    if (this.full && this.full.key === this.hintKey()) return;  // As it is.
    event.preventDefault();
    try {
      await this.fullResult();
      this.link.click();
    } catch (error) {
      this.note(`The download failed: ${error.message}`);
    }
  }
}

function post(card, renderSize) {  // XMLHttpRequest: upload progress.
  return new Promise((resolve) => {
    const form = new FormData();
    form.append('image', card.file);
    if (renderSize) form.append('render_size', renderSize);
    const request = new XMLHttpRequest();
    request.open('POST', '/api/colorize');
    request.responseType = 'blob';
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) {
        card.progress(`Uploading ${Math.round(100 * event.loaded / event.total)}%`,
                      event.loaded / event.total);
      }
    };
    request.upload.onload = () => {
      card.root.classList.add('working');
      card.progress('Colorizing\u2026');
    };
    request.onload = () => resolve(request);
    request.onerror = () => resolve(null);
    request.send(form);
  });
}

async function errorMessage(request) {
  try {
    const body = JSON.parse(await request.response.text());
    if (body.error) return body.error;
  } catch (error) { /* Not JSON: fall through. */ }
  return `The server answered ${request.status} ${request.statusText}.`;
}

async function colorize(card) {
  const renderSize = $('#render-size').value.trim();
  const started = performance.now();
  for (let attempt = 0; ; attempt++) {
    card.progress('Uploading', 0);
    const request = await post(card, renderSize);
    if (request === null) {
      card.fail('Could not reach the server.');
      return;
    }
    if (request.status === 200) {
      card.progress('Receiving', 1);
      try {
        await card.succeed(request.response, (performance.now() - started) / 1000);
      } catch (error) {
        card.fail('The result could not be shown.');
      }
      return;
    }
    if (request.status === 503 && attempt < MAX_BUSY_RETRIES) {
      const wait = Number(request.getResponseHeader('Retry-After')) || 2;
      card.root.classList.remove('working');
      card.progress(`Server busy: retrying in ${wait} s`, 0);
      await new Promise((resolve) => setTimeout(resolve, wait * 1000));
      continue;
    }
    card.fail(await errorMessage(request));
    return;
  }
}

function refreshButtons() {
  const done = state.cards.filter((card) => card.full).length;
  $('#download-all').disabled = done === 0;
  $('#clear').disabled = state.cards.length === 0 || state.active > 0;
  const failed = state.cards.filter((card) => card.root.classList.contains('failed')).length;
  const pending = state.cards.length - done - failed;
  const parts = [];
  if (pending) parts.push(`${pending} in progress`);
  if (done) parts.push(`${done} colorized`);
  if (failed) parts.push(`${failed} failed`);
  setStatus(parts.join(', '));
}

function pump() {
  // As many uploads at once as the server runs, plus one to keep it busy.
  const parallel = state.limits ? state.limits.max_concurrent + 1 : 1;
  while (state.active < parallel && state.queue.length) {
    const card = state.queue.shift();
    state.active++;
    colorize(card).finally(() => {
      state.active--;
      refreshButtons();
      pump();
    });
  }
  refreshButtons();
}

// The extensions the server accepts, for the files found in a folder; a
// photo picked on its own is always tried.
const IMAGE_NAME = /\.(jpe?g|png|webp|gif|bmp|tiff?)$/i;

function isImageName(name) {
  return IMAGE_NAME.test(name);
}

// The files under a dropped entry as [path, File] pairs: a dropped file as
// it is, the images of a dropped folder and its subfolders. readEntries
// returns at most 100 entries a call, so it is called until it has none.
async function filesOf(entry, inFolder = false) {
  if (entry.isFile) {
    if (inFolder && !isImageName(entry.name)) return [];
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    return [[entry.fullPath, file]];
  }
  const reader = entry.createReader();
  const found = [];
  for (;;) {
    const entries = await new Promise(
        (resolve, reject) => reader.readEntries(resolve, reject));
    if (!entries.length) break;
    for (const child of entries) found.push(...await filesOf(child, true));
  }
  return found;
}

async function addDropped(dataTransfer) {
  const entries = [...dataTransfer.items]
      .map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry())
      .filter(Boolean);
  if (!entries.some((entry) => entry.isDirectory)) {
    addFiles([...dataTransfer.files]);
    return;
  }
  const found = [];
  for (const entry of entries) found.push(...await filesOf(entry));
  found.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  addFiles(found.map(([, file]) => file));
}

function byPath(a, b) {
  const pathA = a.webkitRelativePath || a.name;
  const pathB = b.webkitRelativePath || b.name;
  return pathA < pathB ? -1 : pathA > pathB ? 1 : 0;
}

function addFiles(files) {
  for (const file of files) {
    const card = new Card(file);
    state.cards.push(card);
    if (state.limits && file.size > state.limits.max_upload_bytes) {
      card.fail(`The file is ${megabytes(file.size)}, larger than the ` +
                `limit of ${megabytes(state.limits.max_upload_bytes)}.`);
      continue;
    }
    state.queue.push(card);
  }
  pump();
}

// A zip of stored (uncompressed) entries: PNGs do not compress further.
const CRC_TABLE = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xFFFFFFFF;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xFF] ^ (c >>> 8);
  return (c ^ 0xFFFFFFFF) >>> 0;
}

async function makeZip(entries) {
  const now = new Date();
  const time = (now.getHours() << 11) | (now.getMinutes() << 5) | (now.getSeconds() >> 1);
  const date = ((now.getFullYear() - 1980) << 9) | ((now.getMonth() + 1) << 5) | now.getDate();
  const parts = [];
  const central = [];
  let offset = 0;
  for (const {name, blob} of entries) {
    const data = new Uint8Array(await blob.arrayBuffer());
    const nameBytes = new TextEncoder().encode(name);
    const crc = crc32(data);
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(4, 20, true);
    local.setUint16(6, 0x0800, true);  // UTF-8 names.
    local.setUint16(10, time, true);
    local.setUint16(12, date, true);
    local.setUint32(14, crc, true);
    local.setUint32(18, data.length, true);
    local.setUint32(22, data.length, true);
    local.setUint16(26, nameBytes.length, true);
    const header = new DataView(new ArrayBuffer(46));
    header.setUint32(0, 0x02014b50, true);
    header.setUint16(4, 20, true);
    header.setUint16(6, 20, true);
    header.setUint16(8, 0x0800, true);
    header.setUint16(12, time, true);
    header.setUint16(14, date, true);
    header.setUint32(16, crc, true);
    header.setUint32(20, data.length, true);
    header.setUint32(24, data.length, true);
    header.setUint16(28, nameBytes.length, true);
    header.setUint32(42, offset, true);
    parts.push(local, nameBytes, data);
    central.push(header, nameBytes);
    offset += 30 + nameBytes.length + data.length;
  }
  const centralSize = central.reduce((sum, part) => sum + part.byteLength, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, entries.length, true);
  end.setUint16(10, entries.length, true);
  end.setUint32(12, centralSize, true);
  end.setUint32(16, offset, true);
  return new Blob([...parts, ...central, end], {type: 'application/zip'});
}

// Each photo's full-resolution PNG and, if it has hints, their sidecar
// named after the photo, so that `colorize --hints=sidecar` redoes it.
async function downloadAll() {
  const used = new Set();
  const entries = [];
  const button = $('#download-all');
  button.disabled = true;
  for (const card of state.cards) {
    if (!card.full) continue;
    let blob;
    try {
      blob = await card.fullResult();
    } catch (error) {
      card.note(`Left out of the zip: ${error.message}`);
      continue;
    }
    let name = downloadName(card.file.name);
    for (let n = 2; used.has(name); n++) {
      name = downloadName(card.file.name).replace(/\.png$/, `-${n}.png`);
    }
    used.add(name);
    entries.push({name, blob});
    if (card.editor.hints.length) {
      let sidecar = sidecarName(card.file.name);
      for (let n = 2; used.has(sidecar); n++) sidecar = `${n}/${sidecarName(card.file.name)}`;
      used.add(sidecar);
      entries.push({name: sidecar, blob: new Blob([hintsJson(card.editor.hints)])});
    }
  }
  refreshButtons();
  const link = document.createElement('a');
  link.href = URL.createObjectURL(await makeZip(entries));
  link.download = 'chromagen-colorized.zip';
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60000);
}

function clearAll() {
  for (const card of state.cards) {
    if (card.after.src) URL.revokeObjectURL(card.after.src);
    card.root.remove();
  }
  state.cards = [];
  state.activeCard = null;
  state.queue = [];
  refreshButtons();
}

async function loadLimits() {
  try {
    const response = await fetch('/healthz');
    state.limits = await response.json();
    const limits = state.limits;
    $('#render-size').placeholder = String(limits.render_size);
    $('#render-size').min = limits.min_render_size;
    $('#render-size').max = limits.max_render_size;
    $('#limits').textContent =
        `JPEG, PNG, WebP, GIF, BMP or TIFF, up to ${megabytes(limits.max_upload_bytes)} ` +
        `and ${(limits.max_pixels / 1e6).toFixed(0)} megapixels each.`;
  } catch (error) {
    setStatus('The server is not answering.');
  }
  pump();
}

function setUp() {
  const drop = $('#drop');
  const input = $('#files');
  input.addEventListener('change', () => {
    addFiles([...input.files]);
    input.value = '';
  });
  // A chosen folder: its images, in path order; other files are left out.
  const folder = $('#folder');
  folder.addEventListener('change', () => {
    addFiles([...folder.files].filter((file) => isImageName(file.name))
                 .sort(byPath));
    folder.value = '';
  });
  for (const name of ['dragenter', 'dragover']) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add('over');
    });
  }
  for (const name of ['dragleave', 'drop']) {
    drop.addEventListener(name, () => drop.classList.remove('over'));
  }
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    addDropped(event.dataTransfer);
  });
  // A photo dropped beside the drop zone must not replace the page.
  window.addEventListener('dragover', (event) => event.preventDefault());
  window.addEventListener('drop', (event) => event.preventDefault());
  $('#download-all').addEventListener('click', downloadAll);
  document.addEventListener('keydown', (event) => {
    const card = state.activeCard;
    if (!card || event.target.closest('input, textarea, select')) return;
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === 'z') {
      event.preventDefault();
      card.editor.undo();
    } else if (event.key === 'Delete' || event.key === 'Backspace') {
      if (card.editor.removeSelected()) event.preventDefault();
    } else if (event.key === 'Escape') {
      card.editor.closePalette();
    }
  });
  $('#clear').addEventListener('click', clearAll);
  loadLimits();
}

setUp();
