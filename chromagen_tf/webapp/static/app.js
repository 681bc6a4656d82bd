// ChromaGen web app: uploads photos to /api/colorize, shows gray | colour
// with a before/after slider, and downloads one PNG or all of them as a zip.
'use strict';

const PREVIEW_MAX_SIDE = 1400;  // Display only; downloads are full size.
const MAX_BUSY_RETRIES = 60;

const state = {
  limits: null,
  cards: [],
  queue: [],
  active: 0,
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
    $('.name', this.root).textContent = file.name;
    $('.name', this.root).title = file.name;
    $('.size', this.root).textContent = megabytes(file.size);
    $('.slider', this.root).addEventListener('input', (event) => {
      this.compare.style.setProperty('--position', `${event.target.value}%`);
    });
    $('#results').append(this.root);
    this.preview();
  }

  async preview() {
    try {
      const bitmap = await createImageBitmap(this.file,
                                             {imageOrientation: 'from-image'});
      this.setAspect(bitmap.width, bitmap.height);
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

  async succeed(blob, seconds) {
    this.result = blob;
    const url = URL.createObjectURL(blob);
    await new Promise((resolve, reject) => {
      this.after.onload = resolve;
      this.after.onerror = reject;
      this.after.src = url;
    });
    const {naturalWidth: width, naturalHeight: height} = this.after;
    this.setAspect(width, height);
    if (!this.grayFromInput) drawGray(this.before, this.after, width, height);
    $('.size', this.root).textContent =
        `${width} \u00d7 ${height} \u00b7 ${seconds.toFixed(1)} s`;
    const link = $('.download', this.root);
    link.href = url;
    link.download = downloadName(this.file.name);
    link.hidden = false;
    this.root.classList.remove('working');
    this.root.classList.add('done');
  }
}

function post(card, renderSize) {
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
  const done = state.cards.filter((card) => card.result).length;
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

async function downloadAll() {
  const used = new Set();
  const entries = [];
  for (const card of state.cards) {
    if (!card.result) continue;
    let name = downloadName(card.file.name);
    for (let n = 2; used.has(name); n++) {
      name = downloadName(card.file.name).replace(/\.png$/, `-${n}.png`);
    }
    used.add(name);
    entries.push({name, blob: card.result});
  }
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
  $('#clear').addEventListener('click', clearAll);
  loadLimits();
}

setUp();
