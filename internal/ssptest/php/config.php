<?php

/*
 * SimpleSAMLphp configuration for one test, from internal/ssptest. The
 * values that change from test to test are in keystep.json, next to this
 * file, which the Go side writes.
 */

$keystep = json_decode(file_get_contents(__DIR__ . '/keystep.json'), true, 16, JSON_THROW_ON_ERROR);

if (!class_exists('KeystepSSPTestError', false)) {
    /**
     * Shows SimpleSAMLphp's error pages as JSON the Go side can parse.
     */
    class KeystepSSPTestError
    {
        public static function show($config, $data)
        {
            header('Content-Type: application/json');
            header('Cache-Control: no-store');
            $err = $data['error'] ?? [];
            // The message, then those of its causes, from the trace.
            $message = (string) ($err['exceptionMsg'] ?? '');
            foreach (explode("\n", (string) ($err['exceptionTrace'] ?? '')) as $line) {
                if (strpos($line, 'Caused by: ') === 0) {
                    $message .= '; caused by ' . substr($line, strlen('Caused by: '));
                }
            }
            echo json_encode(['error' => [
                'code' => (string) ($data['errorCode'] ?? ''),
                'message' => $message,
                'trackid' => (string) ($err['trackId'] ?? ''),
            ]], JSON_UNESCAPED_SLASHES), "\n";
            exit;
        }
    }
}

$dir = $keystep['dir'];
$config = [
    'baseurlpath' => $keystep['baseurl'],
    'certdir' => $dir . '/cert/',
    'loggingdir' => $dir . '/log/',
    'datadir' => $dir . '/data/',
    'tempdir' => $dir . '/tmp',
    'metadatadir' => $dir . '/metadata/',
    'metadata.sources' => [['type' => 'flatfile', 'directory' => $dir . '/metadata/']],

    'technicalcontact_name' => 'keystep tests',
    'technicalcontact_email' => 'tests@keystep.invalid',
    'timezone' => 'UTC',

    'secretsalt' => $keystep['secretsalt'],
    'auth.adminpassword' => $keystep['adminpassword'],
    'admin.protectindexpage' => false,
    'admin.protectmetadata' => false,
    'admin.checkforupdates' => false,
    'trusted.url.domains' => [$keystep['host']],
    'enable.http_post' => false,
    'assertion.allowed_clock_skew' => 180,

    'enable.saml20-idp' => false,
    'enable.shib13-idp' => false,
    'enable.adfs-idp' => false,
    'module.enable' => ['core' => true, 'saml' => true, 'exampleauth' => false],

    'debug' => ['saml' => false, 'backtraces' => true, 'validatexml' => false],
    'showerrors' => true,
    'errorreporting' => false,
    'errors.show_function' => ['KeystepSSPTestError', 'show'],
    'logging.level' => SimpleSAML\Logger::DEBUG,
    'logging.handler' => 'stderr',
    'logging.processname' => 'simplesamlphp',
    'statistics.out' => [],

    'store.type' => 'phpsession',
    'session.duration' => 60 * 60,
    'session.cookie.name' => 'SimpleSAMLSessionID',
    'session.cookie.path' => '/',
    'session.cookie.domain' => null,
    'session.cookie.secure' => false,
    // No SameSite attribute: a browser drops SameSite=None without Secure,
    // and the IdP (another port on the same host) is the same site anyway.
    'session.cookie.samesite' => null,
    'session.phpsession.cookiename' => 'SimpleSAML',
    'session.phpsession.savepath' => $dir . '/sessions',
    'session.phpsession.httponly' => true,
    'session.authtoken.cookiename' => 'SimpleSAMLAuthToken',
    'language.default' => 'en',
    'language.cookie.secure' => false,
];
