// Parse the embedding payload the server sends (layout in sam_onnx/web.py; version 1).
export const PAYLOAD_MAGIC = 'SAM2EMB\0';
export const PAYLOAD_VERSION = 1;
const PREFIX_BYTES = 16;
export const LEVELS = [
  ['image_embeddings.0', [1, 32, 256, 256]],
  ['image_embeddings.1', [1, 64, 128, 128]],
  ['image_embeddings.2', [1, 256, 64, 64]],
];

/**
 * @param {ArrayBuffer} buffer
 * @returns {{imageKey: string, originalHW: [number, number],
 *            levels: {name: string, dims: number[], data: Uint16Array}[]}}  float16 bit patterns, no copy
 */
export function parsePayload(buffer) {
  if (buffer.byteLength < PREFIX_BYTES) throw new Error('the embedding payload is too short');
  const magic = new TextDecoder('latin1').decode(new Uint8Array(buffer, 0, 8));
  const view = new DataView(buffer);
  if (magic !== PAYLOAD_MAGIC || view.getUint32(8, true) !== PAYLOAD_VERSION) {
    throw new Error(`not an embedding payload of version ${PAYLOAD_VERSION}`);
  }
  const headerBytes = view.getUint32(12, true);
  const start = PREFIX_BYTES + headerBytes;
  if (headerBytes % 8 || start > buffer.byteLength) throw new Error('the embedding payload header is inconsistent');
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, PREFIX_BYTES, headerBytes)));
  const levels = LEVELS.map(([name, dims], i) => {
    const level = header.levels[i];
    if (!level || level.name !== name || level.shape.join() !== dims.join()) {
      throw new Error(`unexpected level ${name}`);
    }
    const count = dims.reduce((a, b) => a * b, 1);
    if (start + level.offset + 2 * count > buffer.byteLength) throw new Error('the embedding payload is truncated');
    return { name, dims, data: new Uint16Array(buffer, start + level.offset, count) };
  });
  return { imageKey: header.image, originalHW: header.original_hw, levels };
}
