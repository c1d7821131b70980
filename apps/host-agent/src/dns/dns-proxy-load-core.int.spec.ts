// The proxy under load and hostile input with the 'core' UDP engine (testing/proxy-load-suites.ts).
import { defineLoadSuites } from './testing/proxy-load-suites';

defineLoadSuites('core');
