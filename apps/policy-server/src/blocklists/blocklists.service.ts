import { Injectable } from '@nestjs/common';
import {
  BlocklistView,
  CommitRequest,
  CommitResult,
  CreateBlocklistRequest,
  DiffView,
  MAX_ENTRIES_PER_VERSION,
  VersionDetailView,
  VersionView,
} from '@cgfence/proto';
import { Clock } from '../common/clock';
import { DomainError } from '../common/errors';
import type { Actor } from '../common/request-context';
import { CommandHandler } from '../event-store/command-handler.service';
import { BlocklistsReadModel } from '../read-models/blocklists/blocklists.read-model';
import { streamOf } from './blocklist';
import { blocklistDecider } from './blocklist.decider';
import { ContentsPool } from './contents.pool';
import { ContentsRepository } from './contents.repository';
import { CommitWork, PreparedCommit } from './contents.work';

/** What a commit asks for, once the transport has read it. */
export type CommitInput =
  | { kind: 'text'; text: string; message: string; expectedVersion?: number }
  | { kind: 'json'; body: CommitRequest }
  /** A JSON body as text: parsed and checked against CommitRequest on a worker thread. */
  | { kind: 'raw'; json: string };

/** The rules of blocklists and their versions. */
@Injectable()
export class BlocklistsService {
  constructor(
    private readonly commands: CommandHandler,
    private readonly readModel: BlocklistsReadModel,
    private readonly contents: ContentsRepository,
    private readonly clock: Clock,
    private readonly pool: ContentsPool,
  ) {}

  async create(req: CreateBlocklistRequest, actor: Actor): Promise<BlocklistView> {
    await this.commands.handle(
      streamOf(req.name),
      blocklistDecider,
      { type: 'CreateBlocklist', name: req.name, description: req.description, owner: req.owner ?? actor.actor, now: this.clock.now() },
      actor,
    );
    return this.get(req.name);
  }

  list(): Promise<BlocklistView[]> {
    return this.readModel.list();
  }

  async get(name: string): Promise<BlocklistView> {
    const found = await this.readModel.get(name);
    if (!found) throw new DomainError('blocklist.not_found', `blocklist ${name} does not exist`);
    return found;
  }

  async versions(name: string): Promise<VersionView[]> {
    await this.get(name);
    return this.readModel.versions(name);
  }

  async version(name: string, version: number): Promise<VersionDetailView> {
    const v = await this.versionView(name, version);
    const entries = await this.contents.entries(v.contentHash);
    return { ...v, entries };
  }

  /** The canonical text of a version, as the CLI writes it to a file. */
  async versionText(name: string, version: number): Promise<string> {
    const v = await this.versionView(name, version);
    return (await this.contents.canonicalText(v.contentHash)) ?? '';
  }

  async diff(name: string, from: number, to: number): Promise<DiffView> {
    return JSON.parse(Buffer.from(await this.diffJson(name, from, to)).toString('utf8')) as DiffView;
  }

  /** The DiffView as UTF-8 JSON, computed on a worker thread (a diff of big lists takes seconds). */
  async diffJson(name: string, from: number, to: number): Promise<Uint8Array> {
    await this.get(name);
    const [fromText, toText] = await Promise.all([this.textAt(name, from), this.textAt(name, to)]);
    return this.pool.diffJson({ blocklist: name, from, to, fromText, toText });
  }

  /** The VersionDetailView as UTF-8 JSON, written on a worker thread. */
  async versionJson(name: string, version: number): Promise<Uint8Array> {
    const v = await this.versionView(name, version);
    return this.pool.versionJson({ view: v, text: (await this.contents.canonicalText(v.contentHash)) ?? '' });
  }

  /**
   * Commits a new version from a full list or from an add/remove change to the
   * latest version. Every bad entry is reported at once (the first
   * MAX_REPORTED_ERRORS one by one); identical content is reported as
   * unchanged, not committed again. The entries are checked before the latest
   * version is loaded, and all the work on them runs on worker threads.
   */
  async commit(name: string, given: CommitInput, actor: Actor): Promise<CommitResult> {
    let input = given;
    let early: PreparedCommit | undefined;
    if (input.kind === 'raw') {
      const parsed = await this.pool.parseCommitJson(input.json);
      if (!parsed.ok) throw new DomainError(parsed.code, parsed.message, parsed.problems.length > 0 ? parsed.problems : undefined);
      const meta = { message: parsed.message, expectedVersion: parsed.expectedVersion };
      if ('full' in parsed) {
        early = parsed.full;
        input = { kind: 'json', body: { entries: [], ...meta } };
      } else {
        input = { kind: 'json', body: { ...parsed.change, ...meta } };
      }
    }
    const current = await this.get(name);
    const full: CommitWork | undefined =
      input.kind === 'text' ? { kind: 'text', text: input.text } : 'entries' in input.body ? { kind: 'entries', entries: input.body.entries } : undefined;
    let prepared: PreparedCommit;
    let baseText: string;
    if (full) {
      prepared = refuseInvalid(early ?? (await this.pool.prepareCommit(full)));
      baseText = await this.textOf(current.latestHash);
    } else if (input.kind === 'json' && 'add' in input.body) {
      const change = input.body;
      refuseInvalid(await this.pool.prepareCommit({ kind: 'entries', entries: change.add }));
      baseText = await this.textOf(current.latestHash);
      prepared = refuseInvalid(await this.pool.prepareCommit({ kind: 'change', baseText, add: change.add, remove: change.remove }));
    } else {
      throw new Error('unreachable: a commit is text, entries or a change');
    }
    if (!prepared.ok) throw new Error('unreachable: refused above');
    const { added, removed } = await this.pool.countChanges({ baseText, canonical: prepared.canonical });
    const message = input.kind === 'text' ? input.message : input.body.message;
    const expectedVersion = input.kind === 'text' ? input.expectedVersion : input.body.expectedVersion;
    const handled = await this.commands.handle(
      streamOf(name),
      blocklistDecider,
      {
        type: 'CommitVersion',
        name,
        contentHash: prepared.hash,
        entryCount: prepared.entryCount,
        addedCount: added,
        removedCount: removed,
        message,
        // The counts and any add/remove change were computed against the version
        // read above: if another commit lands first, refuse rather than mix them.
        expectedVersion: expectedVersion ?? current.latestVersion,
        now: this.clock.now(),
      },
      actor,
      (m) => this.contents.save(prepared.hash, prepared.canonical, prepared.entryCount, m),
    );
    const created = handled.events.length > 0;
    const state = handled.after;
    if (state.status !== 'active') throw new Error(`blocklist ${name} is not active after commit`);
    return { created, merged: prepared.merged, version: await this.versionView(name, state.latestVersion) };
  }

  private async textOf(hash: string | null): Promise<string> {
    if (hash === null) return '';
    const text = await this.contents.canonicalText(hash);
    if (text === undefined) throw new Error(`blocklist content ${hash} is missing from blocklist_contents`);
    return text;
  }

  private async textAt(name: string, version: number): Promise<string> {
    if (version === 0) return '';
    return this.textOf((await this.versionView(name, version)).contentHash);
  }

  private async versionView(name: string, version: number): Promise<VersionView> {
    await this.get(name);
    const v = await this.readModel.version(name, version);
    if (!v) throw new DomainError('version.not_found', `blocklist ${name} has no version ${version}`);
    return v;
  }

}

/** A refused commit as its domain error; the prepared commit otherwise. */
function refuseInvalid(p: PreparedCommit): Extract<PreparedCommit, { ok: true }> {
  if (p.ok) return p;
  if (p.tooMany) {
    throw new DomainError('entries.too_many', `${p.tooMany.reason}; split the list or raise the limit (${MAX_ENTRIES_PER_VERSION})`, p.errors);
  }
  const n = p.errorCount;
  const listed = n > p.errors.length ? ` (the first ${p.errors.length} are listed)` : '';
  throw new DomainError('entries.invalid', `${n} invalid ${n === 1 ? 'entry' : 'entries'}; nothing was committed${listed}`, p.errors);
}
