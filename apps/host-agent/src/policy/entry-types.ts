// The blocklist contract the host agent uses, from libs/proto. The codec
// (parser + hash) is passed in rather than imported where it is used, so the
// policy loader can be tested with any text and the agent main decides which
// implementation it runs.
import { contentHash, parseBlocklistText, type BlocklistEntry, type CanonicalResult, type EntryError } from '@cgfence/proto';

export type { BlocklistEntry, EntryKind } from '@cgfence/proto';

export type BlocklistParseError = EntryError;
export type BlocklistParseResult = CanonicalResult;

/** What the policy loader needs from libs/proto. */
export interface BlocklistCodec {
  parseBlocklistText(text: string): BlocklistParseResult;
  contentHash(entries: readonly BlocklistEntry[]): string;
}

/** The real codec: libs/proto's parser and content hash. */
export const protoBlocklistCodec: BlocklistCodec = { parseBlocklistText, contentHash };
