import { expect } from '@jest/globals';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EXIT_CODES } from '@keymaker/core';
import { EXIT_CODE_MEANINGS, exitCodeMarkdown } from '../src/exit-codes';

// The README's exit-code table is generated from EXIT_CODES; this keeps the two from drifting.
// After adding a code: UPDATE_README=1 npx jest packages/cli/test/readme.test.ts --selectProjects unit
const README = join(__dirname, '..', '..', '..', 'README.md');
const BLOCK = /(<!-- exit-codes:begin[^\n]*-->\n)([\s\S]*?)(<!-- exit-codes:end -->)/;

describe('README exit codes', () => {
  it('every exit code has a meaning', () => {
    for (const name of Object.keys(EXIT_CODES))
      expect({ name, meaning: EXIT_CODE_MEANINGS[name] }).toEqual({ name, meaning: expect.stringMatching(/\S/) });
  });

  it('the README table lists exactly EXIT_CODES: code, name and meaning', () => {
    const text = readFileSync(README, 'utf8');
    const match = BLOCK.exec(text);
    expect(match).not.toBeNull();
    if (process.env.UPDATE_README) {
      writeFileSync(
        README,
        text.replace(
          BLOCK,
          (_all, begin: string, _old: string, end: string) => `${begin}${exitCodeMarkdown()}\n${end}`,
        ),
      );
      return;
    }
    expect(match![2]!.trim()).toBe(exitCodeMarkdown());
    // And the rows really are the codes (not just equal to a renderer that could be wrong too).
    const rows = match![2]!.split('\n').filter((line) => /^\| \d+ \| `/.test(line));
    const listed = Object.fromEntries(
      rows.map((line) => [/`(\w+)`/.exec(line)![1]!, Number(/^\| (\d+)/.exec(line)![1])]),
    );
    expect(listed).toEqual(EXIT_CODES);
  });
});
