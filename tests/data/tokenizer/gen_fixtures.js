#!/usr/bin/env node
// gen_fixtures.js: expected GPT-2 token ids for shoal's tokenizer tests, from npm's
// gpt-3-encoder@1.1.4 (an implementation of OpenAI's encoder.py written by others).
//
// Run by hand (outputs are committed):
//   mkdir -p /tmp/x && (cd /tmp/x && npm install gpt-3-encoder@1.1.4)
//   NODE_PATH=/tmp/x/node_modules node tests/data/tokenizer/gen_fixtures.js tests/data/tokenizer
// Writes, one case per line, tab-separated, texts as hex of their UTF-8 bytes:
//   ref_ids.tsv    name, input bytes, reference text, ids of the reference text
//                  (reference text = input, except for invalid UTF-8 inputs, where it is
//                  what TextDecoder makes of them: each maximal invalid subpart -> U+FFFD)
//   ref_pretok.tsv name, input bytes, byte offsets where the regex's pieces end
// Cases: hand-written ones below (unicode, whitespace runs, contractions, digits, emoji,
// invalid UTF-8) and 1500 random strings over a pool of characters from every class.
// gpt-3-encoder's regex uses JavaScript's \s, which differs from GPT-2's (Python `regex`,
// Unicode White_Space) on U+0085 and U+FEFF only; the random pool leaves those two out and
// the "true_ws_*" cases are segmented with the White_Space regex and BPE'd piece by piece by
// gpt-3-encoder's own bpe() (see docs/tokenizer.md).
'use strict';
const fs = require('fs');
const path = require('path');
const Module = require('module');

const outDir = process.argv[2] || __dirname;
const encPath = require.resolve('gpt-3-encoder/Encoder.js');
// Load Encoder.js a second time with its internals exported, to BPE single pieces.
const m = new Module(encPath, null);
m.filename = encPath;
m.paths = Module._nodeModulePaths(path.dirname(encPath));
m._compile(fs.readFileSync(encPath, 'utf8') +
  '\nmodule.exports.bpe = bpe; module.exports.byte_encoder = byte_encoder;' +
  ' module.exports.encoder = encoder; module.exports.pat = pat;', encPath);
const E = m.exports;
const version = require('gpt-3-encoder/package.json').version;

const patTrue = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\p{White_Space}\p{L}\p{N}]+|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+/gu;

function encodeWith(pat, text) {
  const ids = [];
  for (const piece of Array.from(text.matchAll(pat)).map((x) => x[0])) {
    const t = Array.from(Buffer.from(piece, 'utf8')).map((b) => E.byte_encoder[b]).join('');
    for (const tok of E.bpe(t).split(' ')) {
      if (E.encoder[tok] === undefined) throw new Error('no id for ' + tok);
      ids.push(E.encoder[tok]);
    }
  }
  return ids;
}

function boundaries(pat, text) {
  const ends = [];
  let off = 0;
  for (const piece of Array.from(text.matchAll(pat)).map((x) => x[0])) {
    off += Buffer.byteLength(piece, 'utf8');
    ends.push(off);
  }
  return ends;
}

const cases = [];
const add = (name, input, trueWs) => cases.push({ name, input: Buffer.isBuffer(input) ? input : Buffer.from(input, 'utf8'), trueWs });

add('empty', '');
add('hello', 'Hello world');
add('sentence', 'The quick brown fox jumps over the lazy dog.');
add('contractions', "I'm sure you're right; it's what we'd've done. They'll say she's fine, don't they? We've I'd");
add('contractions_upper', "DON'T YOU'RE IT'S I'M WE'VE THEY'LL HE'D");
add('contractions_odd', "'s 's' ''s x's x'S !'s ' 'll 're've 'd'd '");
add('apostrophes_unicode', 'it’s don’t ‘quoted’ “double”');
add('digits', '0 1 12 123 1234 12345 123456 3.14159 1,000,000 2024-01-01 v1.2.3 0x1F 1e10');
add('numbers_unicode', '²³ ¼½ Ⅻ ٣٤٥ ०१२ 一二三 ①②');
add('spaces_runs', 'a  b   c    d     e');
add('spaces_leading', '   leading spaces');
add('spaces_trailing', 'trailing spaces   ');
add('spaces_only', '     ');
add('single_space', ' ');
add('tabs', '\tone\t\ttwo\t\t\tthree\t');
add('newlines', 'line one\nline two\n\nline four\n\n\n');
add('crlf', 'windows\r\nline\r\n\r\nend\r\n');
add('mixed_ws', ' \t \n \r\n\t  x \t\n y\n \n');
add('ws_before_punct', 'a  !  ?   .');
add('ws_unicode', 'a\u00a0b\u3000c\u2028d\u2029e\u2003f\u00a0 g \u00a0h\u000bi\u000cj');
add('accents', 'café naïve résumé Ångström façade jalapeño Zürich crème brûlée');
add('combining', 'cafe\u0301 n\u0303 a\u0308\u0301b');
add('cjk', '你好，世界！日本語のテキスト。한국어 텍스트입니다.');
add('cyrillic', 'Привет, мир! Съешь же ещё этих мягких французских булок.');
add('greek_arabic_hebrew', 'Καλημέρα κόσμε مرحبا بالعالم שלום עולם');
add('devanagari_thai', 'नमस्ते दुनिया สวัสดีชาวโลก');
add('emoji', 'Hi 👋 there 🎉🎉 family 👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵 skin 👍🏽 ❤️ ★');
add('symbols', '$100 €50 £20 ¥1000 © ® ™ ° ± × ÷ → ← ∑ ∞ ≠ ≤');
add('punct_runs', 'Wait... what?!?! (yes) [no] {maybe} <tag/> @user #hash --- *** ___ ~~~ ```');
add('code', 'int main(void) {\n    return printf("%d\\n", x[i] + 1);\n}\n');
add('json', '{"key": "value", "n": [1, 2.5, -3e4], "ok": true}');
add('url_email', 'https://example.com/path?q=1&r=two#frag user.name+tag@example.org');
add('endoftext_literal', 'before<|endoftext|>after <|endoftext|>');
add('long_word', 'supercalifragilisticexpialidocious antidisestablishmentarianism ' + 'a'.repeat(300));
add('long_digits', '9'.repeat(200));
add('repeated', 'the the the the the the the the, the; the. THE The tHe');
add('control_chars', 'a\u0000b\u0001c\u001cd\u001fe\u007ff');
add('mixed_scripts', 'Русский English 中文 العربية 日本語 ελληνικά');
add('latin_ext', 'Łódź Dvořák Ærø Þór ǅ ǈ ß ẞ ﬁ ﬂ');
add('math_letters', '𝐀𝐁𝐂 𝔸𝔹 𝒜 ℝ ℕ ℤ');
add('private_use_and_noncharacters', 'x\ue000y\ufffdz\uffff\u{10ffff}');
// Invalid UTF-8: shoal encodes each invalid byte as its own byte token in the "other" class;
// the reference ids are those of the U+FFFD-replaced text.
add('invalid_lone_continuation', Buffer.from([0x61, 0x80, 0x62, 0x20, 0xbf, 0xbf, 0x20, 0x63]));
add('invalid_truncated', Buffer.concat([Buffer.from('abc '), Buffer.from([0xe2, 0x82]), Buffer.from(' def '), Buffer.from([0xf0, 0x9f, 0x98])]));
add('invalid_overlong', Buffer.concat([Buffer.from('x '), Buffer.from([0xc0, 0xaf, 0xe0, 0x80, 0xaf]), Buffer.from(' y')]));
add('invalid_surrogate', Buffer.concat([Buffer.from('s '), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('t')]));
add('invalid_high', Buffer.concat([Buffer.from('hi '), Buffer.from([0xf5, 0x80, 0x80, 0x80, 0xff, 0xfe]), Buffer.from(' there')]));
add('invalid_in_word', Buffer.concat([Buffer.from('caf'), Buffer.from([0xe9]), Buffer.from(' na'), Buffer.from([0xef]), Buffer.from('ve')]));
// GPT-2's \s (Unicode White_Space) vs JavaScript's: segmented with patTrue.
add('true_ws_nel', 'a\u0085\u0085!b \u0085x\u0085 y\n\u0085', true);
add('true_ws_bom', '\ufeffhello \ufeff\ufeffworld\ufeff', true);

// Random strings: a seeded xorshift over a pool that covers every branch of the regex.
let seed = 0x2545f491;
const rnd = (n) => {
  seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0;
  return seed % n;
};
const pool = [
  ...'abcdefghijklmnopqrstuvwxyzABCDEFXYZ', ...'0123456789', ...'  ', ...'\t\n\r\u000b\u000c',
  ...".,;:!?-_()[]{}\"'/\\@#$%^&*+=<>|~`", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S",
  'é', 'ß', 'ñ', 'ø', 'Ж', 'я', 'Ω', 'λ', '中', '文', 'の', 'ア', '한', 'ع', 'א', '\u0301',
  '²', '½', 'Ⅻ', '٣', '०', '\u00a0', '\u3000', '\u2028', '\u2003', '\u001c', '\u0000',
  '🎉', '👍🏽', '❤️', '€', '→', '\ufffd', '𝐀', '👨‍👩‍👧',
  ' the', ' of', ' and', 'ing', ' tion', '  ', '\n\n', ' 1', ' 99',
];
for (let i = 0; i < 1500; i++) {
  let s = '';
  const n = 1 + rnd(24);
  for (let k = 0; k < n; k++) s += pool[rnd(pool.length)];
  add('random_' + i, s);
}

const hex = (b) => (b.length ? Buffer.from(b).toString('hex') : '-');
const idsOut = [`# gpt-3-encoder@${version}, node ${process.version}, Unicode ${process.versions.unicode}; generated by gen_fixtures.js`];
const pretokOut = [idsOut[0]];
for (const c of cases) {
  const text = new TextDecoder('utf-8', { ignoreBOM: true }).decode(c.input); // invalid -> U+FFFD; keep a BOM
  const ref = Buffer.from(text, 'utf8');
  const pat = c.trueWs ? patTrue : E.pat;
  const ids = c.trueWs ? encodeWith(patTrue, text) : E.encode(text);
  if (!c.trueWs) {
    const again = encodeWith(E.pat, text);
    if (again.join() !== ids.join()) throw new Error('piecewise bpe differs for ' + c.name);
  }
  idsOut.push([c.name, hex(c.input), hex(ref), ids.length ? ids.join(' ') : '-'].join('\t'));
  if (ref.equals(c.input))
    pretokOut.push([c.name, hex(c.input), boundaries(pat, text).join(' ') || '-'].join('\t'));
}
fs.writeFileSync(path.join(outDir, 'ref_ids.tsv'), idsOut.join('\n') + '\n');
fs.writeFileSync(path.join(outDir, 'ref_pretok.tsv'), pretokOut.join('\n') + '\n');
console.log(`wrote ${cases.length} cases to ${outDir}`);
