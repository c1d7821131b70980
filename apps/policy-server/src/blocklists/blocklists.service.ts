import { Injectable } from '@nestjs/common';
import {
  applyDiff,
  BlocklistEntry,
  BlocklistView,
  canonicalise,
  CanonicalResult,
  canonicalText,
  CommitRequest,
  CommitResult,
  contentHash,
  CreateBlocklistRequest,
  diffEntries,
  DiffView,
  MAX_ENTRIES_PER_VERSION,
  parseBlocklistText,
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
import { ContentsRepository } from './contents.repository';

/** What a commit asks for, once the transport has read it. */
export type CommitInput = { kind: 'text'; text: string; message: string; expectedVersion?: number } | { kind: 'json'; body: CommitRequest };

/** The rules of blocklists and their versions. */
@Injectable()
export class BlocklistsService {
  constructor(
    private readonly commands: CommandHandler,
    private readonly readModel: BlocklistsReadModel,
    private readonly contents: ContentsRepository,
    private readonly clock: Clock,
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
    const [a, b] = await Promise.all([this.entriesAt(name, from), this.entriesAt(name, to)]);
    const { added, removed } = diffEntries(a, b);
    return { blocklist: name, from, to, added, removed };
  }

  /**
   * Commits a new version from a full list or from an add/remove change to the
   * latest version. Every bad entry is reported at once; identical content is
   * reported as unchanged, not committed again.
   */
  async commit(name: string, input: CommitInput, actor: Actor): Promise<CommitResult> {
    const current = await this.get(name);
    const base = await this.contents.entries(current.latestHash);
    const result = this.canonicalInput(input, base);
    const tooMany = result.errors.find((e) => e.line === 0 && /too many entries/.test(e.reason));
    if (tooMany) {
      throw new DomainError('entries.too_many', `${tooMany.reason}; split the list or raise the limit (${MAX_ENTRIES_PER_VERSION})`, result.errors);
    }
    if (result.errors.length > 0) {
      const n = result.errors.length;
      throw new DomainError('entries.invalid', `${n} invalid ${n === 1 ? 'entry' : 'entries'}; nothing was committed`, result.errors);
    }
    const hash = contentHash(result.entries);
    const { added, removed } = diffEntries(base, result.entries);
    const message = input.kind === 'text' ? input.message : input.body.message;
    const expectedVersion = input.kind === 'text' ? input.expectedVersion : input.body.expectedVersion;
    const handled = await this.commands.handle(
      streamOf(name),
      blocklistDecider,
      {
        type: 'CommitVersion',
        name,
        contentHash: hash,
        entryCount: result.entries.length,
        addedCount: added.length,
        removedCount: removed.length,
        message,
        // The counts and any add/remove change were computed against the version
        // read above: if another commit lands first, refuse rather than mix them.
        expectedVersion: expectedVersion ?? current.latestVersion,
        now: this.clock.now(),
      },
      actor,
      (m) => this.contents.save(hash, canonicalText(result.entries), result.entries.length, m),
    );
    const created = handled.events.length > 0;
    const state = handled.after;
    if (state.status !== 'active') throw new Error(`blocklist ${name} is not active after commit`);
    return { created, merged: result.merged, version: await this.versionView(name, state.latestVersion) };
  }

  private canonicalInput(input: CommitInput, base: readonly BlocklistEntry[]): CanonicalResult {
    if (input.kind === 'text') return parseBlocklistText(input.text);
    const body = input.body;
    if ('entries' in body) return canonicalise(body.entries);
    return applyDiff(base, body.add, body.remove);
  }

  private async versionView(name: string, version: number): Promise<VersionView> {
    await this.get(name);
    const v = await this.readModel.version(name, version);
    if (!v) throw new DomainError('version.not_found', `blocklist ${name} has no version ${version}`);
    return v;
  }

  private async entriesAt(name: string, version: number): Promise<BlocklistEntry[]> {
    if (version === 0) return [];
    return this.contents.entries((await this.versionView(name, version)).contentHash);
  }
}
