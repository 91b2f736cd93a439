<?php
/**
 * WordPress's configuration for the toolbox's WordPress image
 * (host/images/wordpress.go): every setting is read from the container's
 * environment when a request runs, so that changing a variable and
 * recreating the container changes the site, as the official image's
 * wp-config-docker.php does (docker-library/docs wordpress/content.md lists
 * the variables). The entrypoint copies this file to wp-config.php on first
 * start and replaces each "put your unique phrase here" (the phrase of
 * WordPress's wp-config-sample.php) with a random value of its own: the
 * keys and salts default to those unless their variables are set.
 *
 * The file is WordPress's wp-config-sample.php, in the order of that file,
 * with the environment in place of the constants:
 * https://developer.wordpress.org/advanced-administration/wordpress/wp-config/
 */

if (!function_exists('toolbox_env')) {
	/**
	 * The value of the variable $name: the contents of the file that
	 * $name_FILE names (a Docker secret, without its final line break),
	 * else $name itself, else $default. Declared once: WP-CLI reads this
	 * file twice.
	 */
	function toolbox_env($name, $default)
	{
		$file = getenv($name . '_FILE');
		if ($file !== false && $file !== '') {
			$contents = file_get_contents($file);
			if ($contents === false) {
				error_log("wp-config.php: cannot read $file, named by {$name}_FILE");
				exit(1);
			}
			return rtrim($contents, "\r\n");
		}
		$value = getenv($name);
		return $value === false ? $default : $value;
	}
}

// The database: the defaults are the installation wizard's
// (wp-admin/setup-config.php), as upstream's image has them.
define('DB_NAME', toolbox_env('WORDPRESS_DB_NAME', 'wordpress'));
define('DB_USER', toolbox_env('WORDPRESS_DB_USER', 'example username'));
define('DB_PASSWORD', toolbox_env('WORDPRESS_DB_PASSWORD', 'example password'));
define('DB_HOST', toolbox_env('WORDPRESS_DB_HOST', 'mysql'));
define('DB_CHARSET', toolbox_env('WORDPRESS_DB_CHARSET', 'utf8mb4'));
define('DB_COLLATE', toolbox_env('WORDPRESS_DB_COLLATE', ''));

// The keys and salts sign cookies and nonces; changing one logs everyone out.
foreach (array(
	'AUTH_KEY'         => 'put your unique phrase here',
	'SECURE_AUTH_KEY'  => 'put your unique phrase here',
	'LOGGED_IN_KEY'    => 'put your unique phrase here',
	'NONCE_KEY'        => 'put your unique phrase here',
	'AUTH_SALT'        => 'put your unique phrase here',
	'SECURE_AUTH_SALT' => 'put your unique phrase here',
	'LOGGED_IN_SALT'   => 'put your unique phrase here',
	'NONCE_SALT'       => 'put your unique phrase here',
) as $toolbox_key => $toolbox_default) {
	define($toolbox_key, toolbox_env('WORDPRESS_' . $toolbox_key, $toolbox_default));
}
unset($toolbox_key, $toolbox_default);

// Letters, digits and underscores only; changed after installation, the
// site looks uninstalled.
$table_prefix = toolbox_env('WORDPRESS_TABLE_PREFIX', 'wp_');

// A value PHP takes as true turns debugging on ("0" does not, as upstream's).
define('WP_DEBUG', (bool) toolbox_env('WORDPRESS_DEBUG', ''));

// Behind a proxy that terminates TLS, the request came over HTTPS when the
// proxy says so: without this WordPress would redirect to https forever
// (https://developer.wordpress.org/advanced-administration/security/https/#using-a-reverse-proxy).
if (isset($_SERVER['HTTP_X_FORWARDED_PROTO']) && strpos($_SERVER['HTTP_X_FORWARDED_PROTO'], 'https') !== false) {
	$_SERVER['HTTPS'] = 'on';
}

// PHP code of the site's own, such as define('WP_HOME', ...).
$toolbox_extra = toolbox_env('WORDPRESS_CONFIG_EXTRA', '');
if ($toolbox_extra !== '') {
	eval($toolbox_extra);
}
unset($toolbox_extra);

if (!defined('ABSPATH')) {
	define('ABSPATH', __DIR__ . '/');
}

require_once ABSPATH . 'wp-settings.php';
