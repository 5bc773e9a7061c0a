'use strict';
// Serverless plugin, listed after serverless-python-requirements, so its hooks run once that plugin
// has filled each function's zip:
//  1. a function with a `module` (serverless.yml) comes out of that plugin as
//     .serverless/<module>-<function>.zip (its lib/inject.js, moveModuleUp); move it to
//     .serverless/<function>.zip, where osls puts an individually packaged function itself;
//  2. add Python 3.12 bytecode to every zip (infra/precompile.py). Needs a python3.12 interpreter:
//     PYTHON312, `python3.12` on PATH, or a pyenv 3.12; without one it warns and leaves the zips as
//     they are.
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

function findPython312() {
  const pyenv = path.join(process.env.PYENV_ROOT || path.join(os.homedir(), '.pyenv'), 'versions');
  const candidates = [process.env.PYTHON312, 'python3.12'];
  if (fs.existsSync(pyenv)) {
    for (const version of fs.readdirSync(pyenv).filter((v) => v.startsWith('3.12')).sort().reverse()) {
      candidates.push(path.join(pyenv, version, 'bin', 'python3.12'));
    }
  }
  for (const candidate of candidates.filter(Boolean)) {
    const probe = spawnSync(candidate, ['-c', 'import sys; print(sys.version_info[:2] == (3, 12))'], { encoding: 'utf8' });
    if (probe.status === 0 && probe.stdout.trim() === 'True') return candidate;
  }
  return null;
}

class PrecompilePlugin {
  constructor(serverless, options) {
    this.serverless = serverless;
    this.options = options;
    const afterRequirements = () => {
      this.renameModuleArtifacts();
      this.precompile();
    };
    this.hooks = {
      'after:package:createDeploymentArtifacts': afterRequirements,
      'after:deploy:function:packageFunction': afterRequirements,   // `sls deploy function -f …`
    };
  }

  // serverless-python-requirements names a module's zip .serverless/infra/zip/api-api.zip. Give it
  // the name osls uses for an individually packaged function (.serverless/api.zip, replacing osls's
  // own zip of that function, which lacks the requirements): the S3 key in the template is then
  // `api.zip`, and `sls deploy --package <dir>` finds <dir>/api.zip, the file it looks for.
  renameModuleArtifacts() {
    const service = this.serverless.service;
    for (const name of service.getAllFunctions()) {
      const fn = service.getFunction(name);
      if (!fn.module || fn.module === '.' || !fn.package || !fn.package.artifact) continue;
      const from = path.resolve(this.serverless.serviceDir, fn.package.artifact);
      const to = path.join(this.serverless.serviceDir, '.serverless', `${name}.zip`);
      if (from === to || !fs.existsSync(from)) continue;
      fs.renameSync(from, to);
      fn.package.artifact = to;
    }
  }

  precompile() {
    const log = (message) => this.serverless.cli.log(`precompile: ${message}`);
    // The zips serverless-python-requirements just filled (see its lib/inject.js): one per function.
    const service = this.serverless.service;
    const archives = [...new Set([service.package.artifact, ...service.getAllFunctions().map((name) => {
      const fn = service.getFunction(name);
      return fn.package && fn.package.artifact;
    })].filter(Boolean).map((artifact) => path.resolve(this.serverless.serviceDir, artifact)))];
    if (archives.length === 0) return log('no artifact to precompile');
    const python = findPython312();
    if (!python) {
      log('no Python 3.12 found (set PYTHON312): the package ships without bytecode, so cold starts are slower');
      return;
    }
    const script = path.join(this.serverless.serviceDir, 'infra', 'precompile.py');
    const run = spawnSync(python, [script, ...archives], { encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`precompile failed: ${run.stderr || run.stdout}`);
    log(run.stdout.trim());
  }
}

module.exports = PrecompilePlugin;
