#!/usr/bin/env node
/** The `dfos` command (package.json "bin"). Subcommands live in src/cli/, one file each. */
import { main } from './cli/main.js';

process.exitCode = await main(process.argv);
