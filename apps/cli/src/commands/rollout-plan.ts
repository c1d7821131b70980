// Reading a rollout plan file (YAML or JSON) and checking it against the API's
// schema before anything is sent, so a typo is reported by field and stage.
import { RolloutPlanSchema, type RolloutPlan, type RolloutPlanInput } from '@cgfence/proto';
import { parseDocument } from 'yaml';

export type PlanParseResult =
  | { ok: true; /** What the file says, sent as is: the server applies the defaults. */ input: RolloutPlanInput; /** With the defaults, to describe it. */ plan: RolloutPlan }
  | { ok: false; problems: string[] };

/** A zod issue, as much of it as we read (zod's own types differ between its versions). */
interface Issue {
  code: string;
  path: PropertyKey[];
  message: string;
  keys?: string[];
  expected?: string;
  errors?: Issue[][];
}

/** JSON when the content starts like JSON, YAML otherwise. */
export function looksLikeJson(text: string): boolean {
  return /^\s*[{[]/.test(text.replace(/^\uFEFF/, ''));
}

/** "at position 42" of a JSON.parse error as line and column. */
function jsonError(text: string, err: Error): string {
  const msg = err.message;
  const m = /at position (\d+)/.exec(msg);
  if (!m) return msg;
  const before = text.slice(0, Number(m[1]));
  const line = before.split('\n').length;
  const column = before.length - before.lastIndexOf('\n');
  return `${msg.replace(/\s*\(line \d+ column \d+\)$/, '')} (line ${line}, column ${column})`;
}

/** The text of a file as a document: the value, or why it is no valid YAML/JSON. */
export function parsePlanDocument(text: string): { ok: true; value: unknown } | { ok: false; problems: string[] } {
  if (text.trim() === '') return { ok: false, problems: ['the plan is empty'] };
  if (looksLikeJson(text)) {
    try {
      return { ok: true, value: JSON.parse(text.replace(/^\uFEFF/, '')) as unknown };
    } catch (err) {
      return { ok: false, problems: [`not valid JSON: ${jsonError(text, err as Error)}`] };
    }
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    // The first line of a pretty error says what and where; the rest is a code excerpt.
    return {
      ok: false,
      problems: doc.errors.map((e) =>
        e.message.includes('multiple documents') ? 'a plan is one YAML document: remove the --- separators' : `not valid YAML: ${(e.message.split('\n')[0] ?? e.message).replace(/:$/, '')}`,
      ),
    };
  }
  return { ok: true, value: doc.toJS() as unknown };
}

/** `stages.1.gates` for a path, and which stage it is in when it is in one. */
function where(path: PropertyKey[], value: unknown): { field: string; stage: string } {
  const field = path.length > 0 ? path.map(String).join('.') : '(plan)';
  if (path[0] !== 'stages' || typeof path[1] !== 'number') return { field, stage: '' };
  const i = path[1];
  const stages = (value as { stages?: unknown } | null)?.stages;
  const name = Array.isArray(stages) ? (stages[i] as { name?: unknown } | null)?.name : undefined;
  return { field, stage: typeof name === 'string' && name !== '' ? ` (stage ${i + 1} "${name}")` : ` (stage ${i + 1})` };
}

const plain = (message: string): string => message.replace(/^Invalid (input|option): /, '');

/** One line per problem: `field.path: message (stage N "name")`. */
export function planProblems(issues: readonly Issue[], value: unknown): string[] {
  const out: string[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys' && issue.keys) {
      for (const key of issue.keys) {
        const w = where([...issue.path, key], value);
        out.push(`${w.field}: unknown field${w.stage}`);
      }
      continue;
    }
    let message = plain(issue.message);
    if (issue.code === 'invalid_union' && issue.errors) {
      const branches = issue.errors;
      // A branch that got the right type says best what is wrong with the value.
      const typed = branches.find((b) => b.length > 0 && b.every((i) => i.code !== 'invalid_type'));
      if (typed) message = typed.map((i) => plain(i.message)).join('; ');
      else {
        const expected = [...new Set(branches.flat().flatMap((i) => (i.expected ? [i.expected] : [])))];
        const received = /received (\w+)/.exec(branches[0]?.[0]?.message ?? '')?.[1];
        if (expected.length > 0) message = `expected ${expected.join(' or ')}${received ? `, received ${received}` : ''}`;
      }
    }
    const w = where(issue.path, value);
    out.push(`${w.field}: ${message}${w.stage}`);
  }
  return out;
}

/** A plan file's text, parsed and checked against RolloutPlanSchema. */
export function parsePlan(text: string): PlanParseResult {
  const doc = parsePlanDocument(text);
  if (!doc.ok) return doc;
  const parsed = RolloutPlanSchema.safeParse(doc.value);
  if (!parsed.success) return { ok: false, problems: planProblems(parsed.error.issues as unknown as Issue[], doc.value) };
  return { ok: true, input: doc.value as RolloutPlanInput, plan: parsed.data };
}
