// deepfake-sdk in the browser: scores an aligned face crop with onnxruntime-web (wasm).
//
// Everything about the input comes from the bundle's manifest.json (written by
// `deepfake-sdk export MODEL --for web`): crop size, JPEG re-encoding, mean/std, threshold, and
// the model file's SHA-256, checked before the model is used. The app passes in its own
// onnxruntime-web module, so it decides where the wasm files are served from:
//
//   import * as ort from "onnxruntime-web/wasm";
//   import { DeepfakeDetector } from "./bundle/deepfake.mjs";
//   const detector = await DeepfakeDetector.load(ort, new URL("./bundle/", location.href));
//   const { pFake, label } = await detector.scoreCrop(imageBitmapOrImageOrCanvas);
//
// It takes a face crop already aligned to the manifest's template (no face detection here):
// `deepfake-sdk predict IMG --crops DIR` writes such crops. A crop at the input size is scored
// exactly as the Python SDK scores it; another size is resized by the canvas, which is close to
// but not the SDK's bicubic.

export class DeepfakeError extends Error {}

export class DeepfakeDetector {
  constructor(ort, session, manifest) {
    this.ort = ort;
    this.session = session;
    this.manifest = manifest;
    this.size = manifest.preprocessing.size;
  }

  /** Fetch manifest.json and the ONNX model under `bundleUrl`, check its SHA-256, open a session. */
  static async load(ort, bundleUrl, { verify = true } = {}) {
    const base = new URL(bundleUrl ?? ".", import.meta.url);
    const manifest = await fetchOk(new URL("manifest.json", base)).then((r) => r.json());
    if (manifest.kind !== "app-bundle" || !manifest.artifacts?.onnx) {
      throw new DeepfakeError(`${base} holds no web bundle (manifest kind ${manifest.kind})`);
    }
    const file = manifest.artifacts.onnx.file;
    const bytes = new Uint8Array(await fetchOk(new URL(file, base)).then((r) => r.arrayBuffer()));
    if (verify) {
      if (!globalThis.crypto?.subtle) {
        throw new DeepfakeError("cannot check the model's SHA-256 here: serve the page over https or localhost");
      }
      const digest = toHex(await crypto.subtle.digest("SHA-256", bytes));
      if (digest !== manifest.files[file]) {
        throw new DeepfakeError(`${file}: checksum ${digest} does not match the manifest; re-export the bundle`);
      }
    }
    const session = await ort.InferenceSession.create(bytes, {
      executionProviders: ["wasm"],
      graphOptimizationLevel: "all", // as the Python SDK's ONNX Runtime session
    });
    return new DeepfakeDetector(ort, session, manifest);
  }

  /** RGBA bytes of the crop as the model sees it: input size, JPEG re-encoded when the manifest says so. */
  async prepare(source) {
    const size = this.size;
    let canvas = drawn(source, size);
    const quality = this.manifest.preprocessing.jpeg_quality;
    if (quality) {
      const blob = await canvas.convertToBlob({ type: "image/jpeg", quality: quality / 100 });
      const decoded = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
      canvas = drawn(decoded, size);
      decoded.close();
    }
    return canvas.getContext("2d").getImageData(0, 0, size, size, { colorSpace: "srgb" }).data;
  }

  /** RGBA bytes -> the model's NCHW float32 input, (pixel / 255 - mean) / std per channel. */
  toInput(rgba) {
    const { mean, std } = this.manifest.preprocessing;
    const plane = this.size * this.size;
    const data = new Float32Array(3 * plane);
    for (let i = 0; i < plane; i++) {
      for (let c = 0; c < 3; c++) data[c * plane + i] = (rgba[4 * i + c] / 255 - mean[c]) / std[c];
    }
    return new this.ort.Tensor("float32", data, [1, 3, this.size, this.size]);
  }

  /** Score one aligned face crop (ImageBitmap, HTMLImageElement, canvas, ImageData, VideoFrame). */
  async scoreCrop(source) {
    const start = performance.now();
    const input = this.toInput(await this.prepare(source));
    const outputs = await this.session.run({ [this.manifest.input.name]: input });
    const logits = Array.from(outputs[this.manifest.outputs.names[0]].data);
    const pFake = softmaxFake(logits);
    const threshold = this.manifest.threshold;
    return {
      pFake, label: pFake >= threshold ? "fake" : "real", threshold, logits,
      model: this.manifest.model.name, ms: performance.now() - start,
    };
  }
}

export function softmaxFake([real, fake]) {
  const m = Math.max(real, fake);
  const r = Math.exp(real - m), f = Math.exp(fake - m);
  return f / (r + f);
}

function drawn(source, size) {
  const canvas = new OffscreenCanvas(size, size);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  if (source instanceof ImageData) {
    if (source.width !== size || source.height !== size) {
      throw new DeepfakeError(`ImageData must be ${size}x${size}, got ${source.width}x${source.height}`);
    }
    ctx.putImageData(source, 0, 0);
    return canvas;
  }
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(source, 0, 0, size, size);
  return canvas;
}

async function fetchOk(url) {
  const response = await fetch(url);
  if (!response.ok) throw new DeepfakeError(`${url}: HTTP ${response.status}`);
  return response;
}

function toHex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}
