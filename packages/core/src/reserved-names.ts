/**
 * Linux user names keymaker never gives an IAM user: the service accounts that
 * distribution packages create (often only when installed, after keymaker has
 * run), and the base system accounts. An IAM user "postgres" must not own the
 * account that `apt install postgresql` later finds and reuses, with its data
 * directory and its peer authentication. Pure data: the gates are in names.ts
 * and the host adds the names its config lists (reservedNames).
 *
 * Sources: Debian base-passwd and the packages of Debian/Ubuntu, RHEL/Fedora
 * (setup, the uidgid list) and Amazon Linux, plus common upstream packages.
 * Only valid Linux names are listed (so no "Debian-exim": upper case is never
 * a keymaker name anyway). Privileged group names are listed too: an account's
 * private group has the account's name, and Ubuntu's sudoers still grants %admin.
 */
export const RESERVED_LINUX_NAMES: readonly string[] = Object.freeze([
  // Base system (Debian base-passwd, RHEL setup)
  'root', 'daemon', 'bin', 'sys', 'sync', 'games', 'man', 'lp', 'mail', 'news', 'uucp', 'proxy', 'www-data',
  'backup', 'list', 'irc', 'gnats', 'nobody', 'nogroup', 'adm', 'halt', 'shutdown', 'operator', 'ftp', 'nfsnobody',
  'admin', 'staff', 'users', 'sudo', 'wheel', 'utmp', 'tty', 'disk', 'kmem', 'dialout', 'cdrom', 'floppy', 'audio',
  'video', 'plugdev', 'netdev', 'input', 'kvm', 'render', 'shadow', 'crontab', 'ssh', 'ssh_keys', 'ssl-cert',
  // Groups that grant privileges (sudoers %admin/%sudo/%wheel, lpadmin, libvirt): a user's private group has its name
  'lpadmin', 'libvirt', 'sambashare', 'dip', 'src', 'voice', 'fax', 'sasl', 'i2c', 'gpio', 'sgx', 'printadmin',
  // systemd, D-Bus, logging, time, OS services
  'messagebus', 'dbus', 'syslog', 'uuidd', 'tcpdump', 'sshd', 'polkitd', 'avahi', 'avahi-autoipd', 'colord',
  'geoclue', 'pulse', 'rtkit', 'saned', 'cups', 'lightdm', 'gdm', 'sddm', 'whoopsie', 'kernoops', 'dnsmasq',
  'tss', 'usbmux', 'fwupd-refresh', 'landscape', 'pollinate', 'lxd', 'chrony', 'ntp', 'ntpsec', 'rpc', 'rpcuser',
  'statd', 'sssd', 'nscd', 'nslcd', 'unbound', 'libstoragemgmt', 'setroubleshoot', 'cockpit-ws', 'cockpit-wsinstance',
  'pcp', 'clevis', 'rngd', 'abrt', 'saslauth', 'radvd', 'qemu', 'libvirt-qemu', 'libvirt-dnsmasq', 'tpm', 'tape',
  // Cloud agents (Amazon Linux, Ubuntu)
  'ec2-instance-connect', 'ssm-user', 'cwagent', 'aws-kinesis-agent-user',
  // keymaker's own AuthorizedKeysCommandUser
  'keymaker',
  // Databases and caches
  'postgres', 'mysql', 'mariadb', 'redis', 'valkey', 'memcache', 'memcached', 'mongodb', 'mongod', 'cassandra',
  'couchdb', 'influxdb', 'neo4j', 'clickhouse', 'etcd', 'zookeeper', 'kafka', 'rabbitmq', 'mosquitto', 'solr',
  'elasticsearch', 'opensearch', 'minio', 'ldap', 'openldap', 'slapd',
  // Web, proxies, mail, DNS
  'nginx', 'apache', 'httpd', 'lighttpd', 'haproxy', 'squid', 'varnish', 'varnishlog', 'vcache', 'tomcat',
  'tomcat9', 'tomcat10', 'jetty', 'php-fpm', 'postfix', 'dovecot', 'dovenull', 'exim', 'postgrey', 'opendkim',
  'opendmarc', 'amavis', 'clamav', 'spamd', 'debian-spamd', 'vmail', 'mailman', 'bind', 'named', 'pdns',
  'freerad', 'radiusd', 'openvpn', 'strongswan', 'tor', 'debian-tor',
  // Monitoring, CI, configuration management, containers
  'prometheus', 'node-exporter', 'alertmanager', 'grafana', 'telegraf', 'kibana', 'logstash', 'filebeat',
  'zabbix', 'nagios', 'icinga', 'munin', 'snmp', 'nut', 'jenkins', 'gitlab-runner', 'git', 'gitlab', 'puppet',
  'chef', 'salt', 'consul', 'vault', 'nomad', 'docker', 'dockremap', 'containerd', 'podman',
  // Big data
  'hadoop', 'hdfs', 'yarn', 'mapred', 'hive', 'hbase', 'spark',
]);

/** Name prefixes distributions keep for system accounts: systemd's own and Debian's "_name" convention (_apt, _chrony). */
export const RESERVED_LINUX_NAME_PREFIXES: readonly string[] = Object.freeze(['systemd-', '_']);
