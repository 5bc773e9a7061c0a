'use strict';
// ${file(infra/label_studio.js):mode}: which fragment of infra/label_studio.yml the stack gets:
// `secret` when --param="labelStudioApiKeySecret=<ARN>" is set (the train and predict roles may read
// it), else `none` (no policy at all). infra/deploy-guard-plugin.js checks the ARN's form.
module.exports = {
  mode: async ({ resolveVariable }) => {
    const secret = await resolveVariable('param:labelStudioApiKeySecret');
    return String(secret == null ? '' : secret).trim() ? 'secret' : 'none';
  },
};
