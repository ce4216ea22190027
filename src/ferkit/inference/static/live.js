// ferkit serve page, live mode: webcam frames go to /api/predict one at a time (the next leaves
// when the answer to the last is in, so the rate is what the server keeps up with) and each face
// is drawn over the live video with its track id, label and confidence.
"use strict";

(() => {
  const byId = (id) => document.getElementById(id);
  const MAX_SIDE = 640;  // frames are sent at most this many pixels long
  const session = `live-${Math.random().toString(36).slice(2, 12)}`;
  let stream = null;
  let running = false;

  function grab(video) {
    const scale = Math.min(1, MAX_SIDE / Math.max(video.videoWidth, video.videoHeight));
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
  }

  function draw(result) {
    const frame = byId("live-frame");
    const video = byId("live-video");
    frame.querySelectorAll(".live-box").forEach((box) => box.remove());
    const sx = video.clientWidth / result.width;
    const sy = video.clientHeight / result.height;
    result.faces.forEach((face) => {
      const [x1, y1, x2, y2] = face.box;
      const box = document.createElement("div");
      box.className = "live-box";
      Object.assign(box.style, { left: `${x1 * sx}px`, top: `${y1 * sy}px`,
        width: `${(x2 - x1) * sx}px`, height: `${(y2 - y1) * sy}px` });
      const label = document.createElement("span");
      label.className = "live-label";
      label.textContent = `#${face.track} ${face.label} ${(100 * face.confidence).toFixed(0)}%`;
      box.appendChild(label);
      frame.appendChild(box);
    });
  }

  function report(text, isError) {
    byId("live-status").textContent = text;
    byId("live-status").className = isError ? "error" : "";
  }

  async function loop() {
    const video = byId("live-video");
    const prior = () => encodeURIComponent(byId("prior-select").value);
    let frames = 0;
    const started = performance.now();
    while (running) {
      const blob = video.videoWidth ? await grab(video) : null;
      if (!blob) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      try {
        const response = await fetch(`/api/predict?live=${session}&prior=${prior()}`, {
          method: "POST", body: blob, headers: { "Content-Type": "image/jpeg" } });
        const body = await response.json();
        if (!running) break;
        if (!response.ok) throw new Error(body.error || `server answered ${response.status}`);
        draw(body);
        frames += 1;
        document.body.dataset.liveFrames = String(frames);
        const rate = frames / ((performance.now() - started) / 1000);
        const n = body.faces.length;
        report(`live: ${n} face${n === 1 ? "" : "s"}, ${rate.toFixed(1)} frames/s ` +
               `(${body.elapsed_ms} ms each on the server)`);
      } catch (err) {
        report(`The ferkit server did not answer (${err.message}); retrying.`, true);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  }

  async function start() {
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: true });
    } catch (err) {
      report(`The webcam is not available (${err.name}).`, true);
      byId("live").hidden = false;
      return;
    }
    byId("live-video").srcObject = stream;
    byId("live").hidden = false;
    byId("result").hidden = true;
    document.body.dataset.live = "on";
    running = true;
    loop();
  }

  function stop() {
    running = false;
    if (stream) stream.getTracks().forEach((track) => track.stop());
    stream = null;
    byId("live-frame").querySelectorAll(".live-box").forEach((box) => box.remove());
    byId("live").hidden = true;
    document.body.dataset.live = "off";
  }

  if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
    byId("live-button").hidden = false;
    byId("live-button").addEventListener("click", () => (running ? stop() : start()));
    byId("live-stop").addEventListener("click", stop);
  }
})();
