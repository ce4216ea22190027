// ferkit serve page: send the photo to /api/predict, draw the boxes, bars and attention maps.
"use strict";

const $ = (id) => document.getElementById(id);
let lastPhoto = null;  // the Blob of the photo on screen, re-sent when the prior changes

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const MANY = 4;  // above this many faces: numbers only on the photo, details folded
const NO_FACE = "No face found in the photo. Try one where a face is clearly visible, " +
  "roughly frontal and at least about 40 pixels wide.";

function faceNumber(face, i) {
  return face.face || i + 1;  // the server numbers faces in reading order
}

function percent(p) {
  return `${(100 * p).toFixed(0)}%`;
}

function drawBoxes(result) {
  const frame = $("photo-frame");
  frame.querySelectorAll(".face-box").forEach((box) => box.remove());
  const img = $("photo");
  const sx = img.clientWidth / result.width;
  const sy = img.clientHeight / result.height;
  const numbersOnly = result.faces.length > MANY;
  result.faces.forEach((face, i) => {
    const [x1, y1, x2, y2] = face.box;
    const box = element("div", "face-box");
    box.style.left = `${x1 * sx}px`;
    box.style.top = `${y1 * sy}px`;
    box.style.width = `${(x2 - x1) * sx}px`;
    box.style.height = `${(y2 - y1) * sy}px`;
    const n = faceNumber(face, i);
    const text = numbersOnly ? `${n}` : `${n}: ${face.label} ${percent(face.confidence)}`;
    const label = element("span", "face-label", text);
    box.appendChild(label);
    frame.appendChild(box);
    // keep every label on the photo: inside the box when there is no room above it, aligned to
    // the box's right edge when it would run past the photo's right edge
    if (y1 * sy < label.offsetHeight) box.classList.add("label-inside");
    if (x1 * sx + label.offsetWidth > img.clientWidth) box.classList.add("label-right");
  });
}

function summaryRow(face, i) {
  const row = element("tr");
  const sorted = Object.entries(face.probabilities).sort((a, b) => b[1] - a[1]);
  const second = sorted.length > 1 ? `${sorted[1][0]} ${percent(sorted[1][1])}` : "";
  row.appendChild(element("td", "number", `${faceNumber(face, i)}`));
  row.appendChild(element("td", "", face.label));
  row.appendChild(element("td", "percent", percent(face.confidence)));
  row.appendChild(element("td", "", second));
  return row;
}

function faceCard(face, i) {
  const n = faceNumber(face, i);
  const card = element("div", "face-card");
  card.id = `face-${n}`;
  const left = element("div");
  if (face.attention) {
    const overlay = element("img", "attention");
    overlay.src = face.attention;
    overlay.alt = `attention map of face ${n} for ${face.label}`;
    left.appendChild(overlay);
    left.appendChild(element("div", "attention-caption", `where the model looked for "${face.label}"`));
  } else {
    left.appendChild(element("div", "attention-caption", "this model has no attention maps"));
  }
  const bars = element("div", "bars");
  bars.appendChild(element("h2", "", `Face ${n}: ${face.label} (${percent(face.confidence)})`));
  const sorted = Object.entries(face.probabilities).sort((a, b) => b[1] - a[1]);
  sorted.forEach(([name, p]) => {
    const row = element("div", name === face.label ? "bar-row top" : "bar-row");
    row.appendChild(element("span", "bar-name", name));
    const track = element("div", "bar-track");
    const fill = element("div", "bar-fill");
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    track.appendChild(fill);
    row.appendChild(track);
    row.appendChild(element("span", "bar-value", `${(100 * p).toFixed(1)}%`));
    bars.appendChild(row);
  });
  card.appendChild(left);
  card.appendChild(bars);
  return card;
}

function showResult(result) {
  const faces = result.faces;
  $("faces").replaceChildren(...faces.map(faceCard));
  $("summary").querySelector("tbody").replaceChildren(...faces.map(summaryRow));
  $("summary").hidden = faces.length < 2;
  $("face-details").hidden = faces.length === 0;
  $("face-details").open = faces.length <= MANY;
  $("legend").hidden = !faces.some((face) => face.attention);
  const img = $("photo");
  if (img.complete && img.naturalWidth) drawBoxes(result);
  else img.onload = () => drawBoxes(result);
  window.onresize = () => drawBoxes(result);
  const n = faces.length;
  const timing = `(${result.backend}, ${result.elapsed_ms} ms)`;
  setStatus(n === 0 ? `${NO_FACE} ${timing}` : `${n} face${n === 1 ? "" : "s"} found ${timing}.`);
  document.body.dataset.state = "done";
}

function showError(text) {
  $("result").hidden = true;
  setStatus(text, true);
  document.body.dataset.state = "error";
}

async function send(photo) {
  lastPhoto = photo;
  document.body.dataset.state = "busy";
  $("result").hidden = true;  // shown again with the answer, never with a stale or broken photo
  $("photo").src = URL.createObjectURL(photo);
  $("faces").replaceChildren();
  $("photo-frame").querySelectorAll(".face-box").forEach((box) => box.remove());
  setStatus("Looking for faces...");
  const prior = encodeURIComponent($("prior-select").value);
  let response;
  try {
    response = await fetch(`/api/predict?prior=${prior}`, {
      method: "POST", body: photo,
      headers: { "Content-Type": photo.type || "application/octet-stream" },
    });
  } catch (err) {
    showError(`The ferkit server did not answer (${err}). Is "ferkit serve" still running?`);
    return;
  }
  const body = await response.json().catch(() => ({ error: `server answered ${response.status}` }));
  if (!response.ok) {
    showError(body.error || `server answered ${response.status}`);
    return;
  }
  $("result").hidden = false;
  showResult(body);
}

function pick(files) {
  if (files && files.length) send(files[0]);
}

function openChooser() {
  $("file-input").click();
}

async function startWebcam() {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: true });
    $("webcam-video").srcObject = stream;
    $("webcam").hidden = false;
  } catch (err) {
    setStatus(`The webcam is not available (${err.name}).`, true);
  }
}

function snap() {
  const video = $("webcam-video");
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  canvas.toBlob((blob) => blob && send(blob), "image/jpeg", 0.92);
}

async function loadInfo() {
  try {
    const info = await (await fetch("/api/info")).json();
    $("model-line").textContent = `${info.model} (${info.backend}); classes: ${info.class_names.join(", ")}`;
  } catch (err) { /* the page still works without the model line */ }
}

function init() {
  const zone = $("drop-zone");
  const input = $("file-input");
  input.addEventListener("change", (event) => {
    pick(event.target.files);
    input.value = "";  // choosing the same file again still sends it
  });
  zone.addEventListener("click", openChooser);
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();  // Space would scroll the page
      openChooser();
    }
  });
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    pick(event.dataTransfer.files);
  });
  $("prior-select").addEventListener("change", () => lastPhoto && send(lastPhoto));
  if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
    $("webcam-button").hidden = false;
    $("webcam-button").addEventListener("click", startWebcam);
    $("snap-button").addEventListener("click", snap);
  }
  document.body.dataset.state = "ready";
  loadInfo();
}

init();
