// The proxy under load and hostile input with the 'node' UDP engine (testing/proxy-load-suites.ts).
import { defineLoadSuites } from './testing/proxy-load-suites';

defineLoadSuites('node');
