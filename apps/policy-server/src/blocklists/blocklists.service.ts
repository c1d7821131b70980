import { Injectable } from '@nestjs/common';
import {
  BlocklistView,
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
import { PreparedCommit } from './contents.work';

/** What a commit asks for, once the transport has read it. */
export interface CommitInput {
  /** JSON (CommitRequest, checked on the worker) or the text file format. */
  media: 'json' | 'text';
  body: Uint8Array;
  /** text/plain commits: the message and expected version from the query (a JSON body carries its own). */
  message?: string;
  expectedVersion?: number;
}

/** The rules of blocklists and their versions. */
@Injectable()
export class BlocklistsService {
  constructor(
    private readonly commands: CommandHandler,
    private readonly readModel: BlocklistsReadModel,
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
    return JSON.parse(Buffer.from(await this.versionBytes(name, version, 'json')).toString('utf8')) as VersionDetailView;
  }

  /** A version as its response body: VersionDetailView JSON or the canonical file, read and written on a worker thread. */
  async versionBytes(name: string, version: number, format: 'json' | 'text'): Promise<Uint8Array> {
    const view = await this.versionView(name, version);
    return this.pool.version({ view, format });
  }

  /** The canonical text of a version, as the CLI writes it to a file. */
  async versionText(name: string, version: number): Promise<string> {
    return Buffer.from(await this.versionBytes(name, version, 'text')).toString('utf8');
  }

  async diff(name: string, from: number, to: number): Promise<DiffView> {
    return JSON.parse(Buffer.from(await this.diffJson(name, from, to)).toString('utf8')) as DiffView;
  }

  /** The DiffView as UTF-8 JSON, computed on a worker thread from the two versions' content (a diff of big lists takes seconds). */
  async diffJson(name: string, from: number, to: number): Promise<Uint8Array> {
    await this.get(name);
    const [fromHash, toHash] = await Promise.all([this.hashAt(name, from), this.hashAt(name, to)]);
    return this.pool.diff({ blocklist: name, from, to, fromHash, toHash });
  }

  /** For a replay: the names runs resolved since `since` that version `version` would block, with the entry that blocks each (on a worker thread). */
  async replayMatch(name: string, version: number, since: string): Promise<[name: string, entry: string][]> {
    return this.pool.replayMatch({ hash: await this.hashAt(name, version), since });
  }

  /** The content hash of a version (null for version 0, the empty list before the first commit). */
  async hashAt(name: string, version: number): Promise<string | null> {
    if (version === 0) return null;
    return (await this.versionView(name, version)).contentHash;
  }

  /**
   * Commits a new version from a full list or from an add/remove change to the
   * latest version. The body goes to a worker thread as bytes: there it is
   * decoded and checked, every bad entry is reported at once (the first
   * MAX_REPORTED_ERRORS one by one) before the latest version is read, and the
   * content row is written. Identical content is reported as unchanged, not
   * committed again. Here only the event is appended.
   */
  async commit(name: string, input: CommitInput, actor: Actor): Promise<CommitResult> {
    const current = await this.get(name);
    const outcome = await this.pool.commit({ media: input.media, body: input.body, baseHash: current.latestHash });
    if (!outcome.ok) throw new DomainError(outcome.code, outcome.message, outcome.problems.length > 0 ? outcome.problems : undefined);
    if (outcome.refused) refuseInvalid(outcome.refused);
    else {
      const fromBody = input.media === 'json';
      const message = (fromBody ? outcome.message : input.message) ?? '';
      const expectedVersion = fromBody ? outcome.expectedVersion : input.expectedVersion;
      const handled = await this.commands.handle(
        streamOf(name),
        blocklistDecider,
        {
          type: 'CommitVersion',
          name,
          contentHash: outcome.hash,
          entryCount: outcome.entryCount,
          addedCount: outcome.added,
          removedCount: outcome.removed,
          message,
          // The counts and any add/remove change were computed against the version
          // read above: if another commit lands first, refuse rather than mix them.
          expectedVersion: expectedVersion ?? current.latestVersion,
          now: this.clock.now(),
        },
        actor,
      );
      const created = handled.events.length > 0;
      const state = handled.after;
      if (state.status !== 'active') throw new Error(`blocklist ${name} is not active after commit`);
      return { created, merged: outcome.merged, version: await this.versionView(name, state.latestVersion) };
    }
    throw new Error('unreachable: refused above');
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
