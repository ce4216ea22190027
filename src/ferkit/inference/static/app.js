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

function drawBoxes(result) {
  const frame = $("photo-frame");
  frame.querySelectorAll(".face-box").forEach((box) => box.remove());
  const img = $("photo");
  const sx = img.clientWidth / result.width;
  const sy = img.clientHeight / result.height;
  result.faces.forEach((face, i) => {
    const [x1, y1, x2, y2] = face.box;
    const box = element("div", "face-box");
    box.style.left = `${x1 * sx}px`;
    box.style.top = `${y1 * sy}px`;
    box.style.width = `${(x2 - x1) * sx}px`;
    box.style.height = `${(y2 - y1) * sy}px`;
    const pct = (100 * face.confidence).toFixed(0);
    box.appendChild(element("span", "face-label", `${i + 1}: ${face.label} ${pct}%`));
    frame.appendChild(box);
  });
}

function faceCard(face, i) {
  const card = element("div", "face-card");
  const left = element("div");
  if (face.attention) {
    const overlay = element("img", "attention");
    overlay.src = face.attention;
    overlay.alt = `attention map of face ${i + 1} for ${face.label}`;
    left.appendChild(overlay);
    left.appendChild(element("div", "attention-caption", `where the model looked for "${face.label}"`));
  } else {
    left.appendChild(element("div", "attention-caption", "this model has no attention maps"));
  }
  const bars = element("div", "bars");
  bars.appendChild(element("h2", "", `Face ${i + 1}: ${face.label}`));
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
  const faces = $("faces");
  faces.replaceChildren(...result.faces.map(faceCard));
  const img = $("photo");
  if (img.complete && img.naturalWidth) drawBoxes(result);
  else img.onload = () => drawBoxes(result);
  window.onresize = () => drawBoxes(result);
  const n = result.faces.length;
  setStatus(`${n} face${n === 1 ? "" : "s"} found (${result.backend}, ${result.elapsed_ms} ms).`);
  document.body.dataset.state = "done";
}

async function send(photo) {
  lastPhoto = photo;
  document.body.dataset.state = "busy";
  $("result").hidden = false;
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
    setStatus(`The ferkit server did not answer (${err}). Is "ferkit serve" still running?`, true);
    document.body.dataset.state = "error";
    return;
  }
  const body = await response.json().catch(() => ({ error: `server answered ${response.status}` }));
  if (!response.ok) {
    setStatus(body.error || `server answered ${response.status}`, true);
    document.body.dataset.state = "error";
    return;
  }
  showResult(body);
}

function pick(files) {
  if (files && files.length) send(files[0]);
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
  $("file-input").addEventListener("change", (event) => pick(event.target.files));
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
