import { Injectable } from '@nestjs/common';

/** The time, behind an injected class so rules can be tested at a fixed instant. */
@Injectable()
export class Clock {
  now(): Date {
    return new Date();
  }
}
