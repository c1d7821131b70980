// The pure half of the IPv4 /16 prefilter: which slots a policy's LPM keys
// and a learned address mark.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeAddrKey, encodePolicyKeys } from './codec';
import { parseIp } from './addr';
import { addLpm4Slots, emptySlotSet, mappedSlot, PREFILTER4_SLOTS, prefilterSlotOf, slotList } from './prefilter';

const slotsOf = (list: string[]) => [...slotList(addLpm4Slots(emptySlotSet(), encodePolicyKeys(4, list)))];
const keyOf = (addr: string) => {
  const { family, bytes } = parseIp(addr);
  return encodeAddrKey(family, bytes);
};

describe('prefilter slots', () => {
  it('has one slot per /16, indexed by the top 16 bits', () => {
    assert.equal(PREFILTER4_SLOTS, 65_536);
    assert.equal(prefilterSlotOf('127.1.0.1'), 0x7f01);
    assert.equal(prefilterSlotOf('255.255.255.255'), 0xffff);
    assert.throws(() => prefilterSlotOf('127.1'), RangeError);
  });

  it('marks the /16 of a /32, /24, /20 or /16', () => {
    assert.deepEqual(slotsOf(['10.1.2.3/32', '10.1.9.0/24', '192.0.2.0/24', '172.16.16.0/20', '198.51.0.0/16']), [
      prefilterSlotOf('10.1.0.0'),
      prefilterSlotOf('172.16.0.0'),
      prefilterSlotOf('192.0.0.0'),
      prefilterSlotOf('198.51.0.0'),
    ]);
  });

  it('marks every /16 a shorter prefix covers', () => {
    const eight = slotsOf(['10.0.0.0/8']);
    assert.equal(eight.length, 256);
    assert.equal(eight[0], 10 * 256);
    assert.equal(eight[255], 10 * 256 + 255);
    assert.deepEqual(slotsOf(['172.16.0.0/12']), Array.from({ length: 16 }, (_, i) => 172 * 256 + 16 + i));
    assert.deepEqual(slotsOf(['128.0.0.0/1']).length, 32_768);
    assert.equal(slotsOf(['128.0.0.0/1'])[0], 0x8000);
    assert.equal(slotsOf(['0.0.0.0/0']).length, 65_536);
    assert.deepEqual(slotsOf(['10.255.0.0/15']), [10 * 256 + 254, 10 * 256 + 255]);
  });

  it('finds the slot of a learned IPv4 address, in either form, and none for IPv6', () => {
    assert.equal(mappedSlot(keyOf('127.1.0.5')), 0x7f01);
    assert.equal(mappedSlot(keyOf('::ffff:127.1.0.5')), 0x7f01);
    assert.equal(mappedSlot(keyOf('2001:db8::1')), -1);
    assert.equal(mappedSlot(keyOf('::127.1.0.5')), -1, 'IPv4-compatible is not what blocked4() looks up');
  });
});
