/**
 * Where a JSON text goes wrong, as a line, a column and a short reason. `JSON.parse` only says
 * that a text is invalid (and its position format differs between Node versions), so a users
 * file with a typo gets a message pointing at the exact spot from this small scanner instead.
 * It is only run after `JSON.parse` has failed, so speed does not matter.
 */

/**
 * Finds where a JSON text stops being valid, for messages: the offset and a short reason
 * (a trailing comma, single quotes, a missing comma, an unterminated string, ...).
 */
export function locateJsonError(text: string): { offset: number; reason: string } {
  let i = 0;
  class Stop extends Error {
    constructor(readonly at: number, readonly reason: string) {
      super(reason);
    }
  }
  const fail = (reason?: string): never => {
    if (i >= text.length) throw new Stop(i, 'unexpected end of file');
    throw new Stop(i, reason ?? `unexpected ${JSON.stringify(text[i])}`);
  };
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const lit = (word: string) => {
    for (const ch of word) {
      if (text[i] !== ch) fail();
      i++;
    }
  };
  const str = () => {
    i++; // opening quote
    for (;;) {
      if (i >= text.length) fail();
      const c = text.charCodeAt(i);
      if (c === 0x22) return void i++;
      if (c < 0x20) fail('control character inside a string (a missing closing quote?)');
      if (c === 0x5c) {
        i++;
        const e = text[i];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail('bad \\u escape');
          i += 5;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i++;
        else fail('bad escape in a string');
      } else i++;
    }
  };
  const num = () => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
    if (!m || m[0] === '-' || m[0] === '') fail();
    i += m![0].length;
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') return void i++;
      for (;;) {
        ws();
        if (text[i] !== '"') {
          fail(
            text[i] === '}'
              ? 'trailing comma before "}"'
              : text[i] === "'"
                ? 'single quotes; JSON needs double quotes'
                : 'expected a double-quoted property name',
          );
        }
        str();
        ws();
        if (text[i] !== ':') fail('expected ":" after a property name');
        i++;
        value();
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') return void i++;
        fail('expected "," or "}" (a missing comma?)');
      }
    } else if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') return void i++;
      for (;;) {
        value();
        ws();
        if (text[i] === ',') {
          i++;
          ws();
          if (text[i] === ']') fail('trailing comma before "]"');
          continue;
        }
        if (text[i] === ']') return void i++;
        fail('expected "," or "]" (a missing comma?)');
      }
    } else if (c === '"') str();
    else if (c === 't') lit('true');
    else if (c === 'f') lit('false');
    else if (c === 'n') lit('null');
    else if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) num();
    else fail(c === "'" ? 'single quotes; JSON needs double quotes' : undefined);
  };
  try {
    value();
    ws();
    if (i < text.length) fail('unexpected text after the end of the JSON value');
    return { offset: text.length, reason: 'invalid JSON' };
  } catch (e) {
    if (e instanceof Stop) return { offset: e.at, reason: e.reason };
    throw e;
  }
}

/** The 1-based line and column of a character offset in a text. */
export function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - (before.lastIndexOf('\n') + 1) + 1;
  return { line, column };
}
