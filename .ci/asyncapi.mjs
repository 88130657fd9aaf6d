// Validates an AsyncAPI document with the official parser: node asyncapi.mjs FILE.
// Exits 1 on any error, printing every diagnostic.
import { Parser, fromFile } from '@asyncapi/parser';

const file = process.argv[2];
const { document, diagnostics } = await fromFile(new Parser(), file).parse();
const severities = ['error', 'warning', 'info', 'hint'];
for (const d of diagnostics) {
  console.log(`${file}: ${severities[d.severity]}: ${d.message} at ${d.path.join('/')}`);
}
if (!document || diagnostics.some((d) => d.severity === 0)) {
  process.exit(1);
}
console.log(`${file}: valid AsyncAPI ${document.version()}, ${document.channels().length} channels`);
