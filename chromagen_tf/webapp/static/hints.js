// ChromaGen web app: the colour hints of one photo. Click the photo to add
// a hint, pick its colour (the model's suggestions first, then any colour),
// drag a marker to move it, delete it (its x, or Delete), undo (Ctrl+Z).
// Points are pixels of the photo as displayed (after EXIF orientation):
// the format of chromagen_tf/hints.py.
'use strict';

const DRAG_THRESHOLD_PX = 4;  // A smaller move is a click, not a drag.
const PALETTE_GAP_PX = 14;

function hintsJson(hints) {
  return JSON.stringify({hints: hints.map(({x, y, color}) => ({x, y, color}))},
                        null, 1) + '\n';
}

function percent(value) {
  return `${(100 * value).toFixed(3)}%`;
}

class HintEditor {
  // root: the card; size(): the photo's {width, height};
  // suggest(x, y, hints): a promise of [{color, probability}] or null;
  // onChange(): called after every change of the hint list.
  constructor(root, {size, suggest, onChange, onActive}) {
    this.root = root;
    this.compare = root.querySelector('.compare');
    this.layer = root.querySelector('.hint-layer');
    this.palette = root.querySelector('.palette');
    this.swatches = root.querySelector('.swatches');
    this.picker = root.querySelector('.palette input[type=color]');
    this.undoButton = root.querySelector('.undo');
    this.clearButton = root.querySelector('.clear-hints');
    this.size = size;
    this.suggest = suggest;
    this.onChange = onChange;
    this.onActive = onActive;
    this.hints = [];
    this.history = [];
    this.selected = -1;
    this.pending = null;  // A clicked point waiting for its colour.
    this.suggestion = 0;  // Drops suggestions for an older click.
    this.layer.addEventListener('pointerdown', (event) => this.pointerDown(event));
    this.picker.addEventListener('input', () => this.previewColor(this.picker.value));
    this.picker.addEventListener('change', () => this.pick(this.picker.value));
    this.undoButton.addEventListener('click', () => this.undo());
    this.clearButton.addEventListener('click', () => {
      if (this.hints.length) this.commit([]);
    });
    this.render();
  }

  enable() {
    this.root.classList.add('hintable');
    this.layer.hidden = false;
  }

  // Client coordinates -> a pixel of the photo, inside it.
  toPhoto(clientX, clientY) {
    const box = this.layer.getBoundingClientRect();
    const {width, height} = this.size();
    const clamp = (value, limit) => Math.min(limit - 1, Math.max(0, Math.floor(value)));
    return {x: clamp((clientX - box.left) / box.width * width, width),
            y: clamp((clientY - box.top) / box.height * height, height)};
  }

  commit(hints) {
    this.history.push(this.hints);
    this.hints = hints;
    this.selected = Math.min(this.selected, hints.length - 1);
    this.render();
    this.onChange();
  }

  undo() {
    if (!this.history.length) return;
    this.closePalette();
    this.hints = this.history.pop();
    this.selected = -1;
    this.render();
    this.onChange();
  }

  remove(index) {
    this.closePalette();
    this.selected = -1;
    this.commit(this.hints.filter((_, i) => i !== index));
  }

  removeSelected() {
    if (this.selected < 0) return false;
    this.remove(this.selected);
    return true;
  }

  pointerDown(event) {
    if (event.button !== 0) return;
    event.preventDefault();
    this.onActive();
    const marker = event.target.closest('.marker');
    if (event.target.closest('.remove')) {
      this.remove(Number(marker.dataset.index));
      return;
    }
    if (marker && !marker.classList.contains('pending')) {
      this.dragMarker(event, marker, Number(marker.dataset.index));
      return;
    }
    if (!this.palette.hidden) {  // A click beside an open palette closes it.
      this.closePalette();
      return;
    }
    this.selected = -1;
    this.pending = this.toPhoto(event.clientX, event.clientY);
    this.render();
    this.openPalette(this.pending, this.hints);
  }

  dragMarker(event, marker, index) {
    const start = {x: event.clientX, y: event.clientY};
    let moved = false;
    let point = this.hints[index];
    this.layer.setPointerCapture(event.pointerId);
    const move = (moveEvent) => {
      if (!moved && Math.hypot(moveEvent.clientX - start.x,
                               moveEvent.clientY - start.y) < DRAG_THRESHOLD_PX) {
        return;
      }
      if (!moved) this.closePalette();
      moved = true;
      point = {...point, ...this.toPhoto(moveEvent.clientX, moveEvent.clientY)};
      this.place(marker, point);
    };
    const up = () => {
      this.layer.removeEventListener('pointermove', move);
      this.layer.removeEventListener('pointerup', up);
      this.layer.removeEventListener('pointercancel', up);
      this.selected = index;
      if (moved) {
        this.commit(this.hints.map((hint, i) => (i === index ? point : hint)));
      } else {  // A click on a marker: select it and offer to recolour it.
        this.render();
        this.openPalette(point, this.hints.filter((_, i) => i !== index));
      }
    };
    this.layer.addEventListener('pointermove', move);
    this.layer.addEventListener('pointerup', up);
    this.layer.addEventListener('pointercancel', up);
  }

  // The colour for the pending point, or the selected hint's new colour.
  pick(color) {
    if (this.pending) {
      const hint = {...this.pending, color};
      this.pending = null;
      this.selected = this.hints.length;
      this.closePalette();
      this.commit([...this.hints, hint]);
    } else if (this.selected >= 0) {
      const index = this.selected;
      this.closePalette();
      if (this.hints[index].color !== color) {
        this.commit(this.hints.map((hint, i) => (i === index ? {...hint, color} : hint)));
      }
    }
  }

  previewColor(color) {
    const marker = this.pending ? this.layer.querySelector('.marker.pending') :
        this.layer.querySelector(`.marker[data-index="${this.selected}"]`);
    if (marker) marker.style.setProperty('--color', color);
  }

  async openPalette(point, otherHints) {
    const ticket = ++this.suggestion;
    this.swatches.replaceChildren();
    this.palette.classList.add('loading');
    const current = this.selected >= 0 && !this.pending ? this.hints[this.selected].color : null;
    this.picker.value = current || '#808080';
    this.palette.hidden = false;
    this.placePalette(point);
    const suggestions = await this.suggest(point.x, point.y, otherHints);
    if (ticket !== this.suggestion || this.palette.hidden) return;
    this.palette.classList.remove('loading');
    for (const {color, probability} of suggestions || []) {
      const swatch = document.createElement('button');
      swatch.type = 'button';
      swatch.className = 'swatch';
      swatch.style.setProperty('--color', color);
      swatch.dataset.color = color;
      swatch.title = `${color} (${Math.round(100 * probability)}%)`;
      swatch.setAttribute('aria-label', swatch.title);
      swatch.addEventListener('click', () => this.pick(color));
      this.swatches.append(swatch);
    }
    if (!current && suggestions && suggestions.length) this.picker.value = suggestions[0].color;
    this.placePalette(point);
  }

  closePalette() {
    this.suggestion++;
    this.palette.hidden = true;
    if (this.pending) {
      this.pending = null;
      this.render();
    }
  }

  // Beside the point, inside the photo.
  placePalette(point) {
    const {width, height} = this.size();
    const boxWidth = this.compare.clientWidth;
    const boxHeight = this.compare.clientHeight;
    const x = (point.x + 0.5) / width * boxWidth;
    const y = (point.y + 0.5) / height * boxHeight;
    const paletteWidth = this.palette.offsetWidth;
    const paletteHeight = this.palette.offsetHeight;
    let left = x + PALETTE_GAP_PX;
    if (left + paletteWidth > boxWidth) left = x - PALETTE_GAP_PX - paletteWidth;
    let top = y + PALETTE_GAP_PX;
    if (top + paletteHeight > boxHeight) top = y - PALETTE_GAP_PX - paletteHeight;
    this.palette.style.left = `${Math.max(0, left)}px`;
    this.palette.style.top = `${Math.max(0, top)}px`;
  }

  place(marker, point) {
    const {width, height} = this.size();
    marker.style.left = percent((point.x + 0.5) / width);
    marker.style.top = percent((point.y + 0.5) / height);
  }

  render() {
    const markers = this.hints.map((hint, index) => {
      const marker = document.createElement('div');
      marker.className = 'marker';
      marker.dataset.index = index;
      marker.style.setProperty('--color', hint.color);
      marker.title = `${hint.color} at (${hint.x}, ${hint.y}); drag to move`;
      if (index === this.selected) {
        marker.classList.add('selected');
        const remove = document.createElement('button');
        remove.type = 'button';
        remove.className = 'remove';
        remove.textContent = '\u00d7';
        remove.title = 'Delete this hint (Delete)';
        marker.append(remove);
      }
      this.place(marker, hint);
      return marker;
    });
    if (this.pending) {
      const marker = document.createElement('div');
      marker.className = 'marker pending';
      this.place(marker, this.pending);
      markers.push(marker);
    }
    this.layer.replaceChildren(...markers);
    this.undoButton.disabled = !this.history.length;
    this.clearButton.disabled = !this.hints.length;
  }
}
